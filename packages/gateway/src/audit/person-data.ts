import type { Person, PersonDataKind } from "../domain/person-data.ts";
import type { Store } from "../store/port.ts";
import { scanKeys, streamEntries } from "../store/scan.ts";
import { decodeRecord } from "../util/stored-record.ts";
import { AUDIT_STREAM, AuditRecord, USAGE_STREAM } from "./log.ts";

/** Does the JSON text hold `value` as a whole string (not as part of a longer one)? */
const holdsString = (json: string, value: string) => json.includes(JSON.stringify(value));

interface Deps {
  store: Pick<Store, "streams" | "kv">;
  /** The person's own sandboxes: their audit records (egress, repairs) are about them. */
  ownSandboxes: (p: Person) => Promise<string[]>;
}

async function auditOf(d: Deps, p: Person): Promise<{ id: string; record: AuditRecord }[]> {
  const sandboxes = new Set(await d.ownSandboxes(p));
  const out: { id: string; record: AuditRecord }[] = [];
  for await (const e of streamEntries(d.store, AUDIT_STREAM)) {
    const rec = decodeRecord(AuditRecord, e.data);
    if (!rec.ok) continue;
    const r = rec.record;
    if (
      r.actor === p.userKey ||
      (r.sandboxId !== undefined && sandboxes.has(r.sandboxId)) ||
      holdsString(e.data, p.userKey)
    )
      out.push({ id: e.id, record: r });
  }
  return out;
}

async function usageOf(d: Deps, p: Person): Promise<{ id: string; data: unknown }[]> {
  const out: { id: string; data: unknown }[] = [];
  for await (const e of streamEntries(d.store, USAGE_STREAM)) {
    let parsed: { userKey?: unknown } | undefined;
    try {
      parsed = JSON.parse(e.data) as { userKey?: unknown };
    } catch {
      continue; // unreadable: skipped, as every reader does
    }
    if (parsed?.userKey === p.userKey) out.push({ id: e.id, data: parsed });
  }
  return out;
}

/**
 * Usage counters name the person in their key (URI-encoded, second to last
 * part). Erasure moves the count to the unknown person `-`: the agent's
 * totals stay right, nothing points at the person.
 */
async function anonymizeCounters(d: Deps, p: Person): Promise<number> {
  const encoded = encodeURIComponent(p.userKey);
  let moved = 0;
  for await (const { key, value } of scanKeys(d.store.kv, "usage:m:")) {
    const parts = key.split(":");
    if (parts.length < 3 || parts[parts.length - 2] !== encoded) continue;
    parts[parts.length - 2] = "-";
    const n = Number(value);
    if (Number.isFinite(n) && n > 0) await d.store.kv.incr(parts.join(":"), n);
    await d.store.kv.del(key);
    moved++;
  }
  return moved;
}

/**
 * Audit records about the person (theirs, about their sandboxes, or naming
 * them) and their usage records. Erasure removes the audit records and the
 * usage records, and anonymizes the usage counters. The record of the erasure
 * itself is written afterwards (people/person-data.ts) and names the person
 * only by a digest.
 */
export function auditData(d: Deps): PersonDataKind {
  return {
    name: "audit",
    export: async (p) => ({
      audit: (await auditOf(d, p)).map((e) => e.record),
      usage: (await usageOf(d, p)).map((e) => e.data),
    }),
    erase: async (p) => {
      const audit = await d.store.streams.remove(
        AUDIT_STREAM,
        (await auditOf(d, p)).map((e) => e.id),
      );
      const usage = await d.store.streams.remove(
        USAGE_STREAM,
        (await usageOf(d, p)).map((e) => e.id),
      );
      return {
        auditRecords: audit,
        usageRecords: usage,
        usageCounters: await anonymizeCounters(d, p),
      };
    },
  };
}
