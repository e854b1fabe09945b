import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { SHARED_USER } from "@lobu/core";
import { ConversationRecord, MessageRecord } from "../conversations/records.ts";
import { userKeyOf } from "../domain/origin.ts";
import { ownsConversation, type Person, type PersonDataKind } from "../domain/person-data.ts";
import { PendingRequest } from "../domain/requests.ts";
import { QueuedTurn } from "../domain/turns.ts";
import type { PlaceholderRegistry } from "../secrets/placeholders.ts";
import type { Store } from "../store/port.ts";
import { scanKeys } from "../store/scan.ts";
import { decodeRecord } from "../util/stored-record.ts";
import { requestKey } from "./requests.ts";
import type { SandboxManager } from "./sandbox-manager.ts";
import { SandboxRecord } from "./sandbox-records.ts";

/** Where the worker keeps pi's session files (the transcript) in a volume. */
export const TRANSCRIPTS_DIR = join(".lobu", "sessions");
/** Most bytes of transcript files one export carries; the rest is named, not included. */
const EXPORT_TRANSCRIPT_BYTES = 20 * 1024 * 1024;
const QUEUE_SCAN = 10_000;

/**
 * The person's own sandboxes: by their records and by their conversations
 * (one conversation, one sandbox), so a sandbox whose record was lost is found too.
 */
export async function ownSandboxIds(store: Pick<Store, "kv">, p: Person): Promise<string[]> {
  const ids = new Set<string>();
  for await (const { key, value } of scanKeys(store.kv, "sandbox:")) {
    const rec = decodeRecord(SandboxRecord, value);
    if (rec.ok && ownsConversation(p, rec.record.key)) ids.add(key.slice("sandbox:".length));
  }
  for await (const { value } of scanKeys(store.kv, "conv:")) {
    const rec = decodeRecord(ConversationRecord, value);
    if (rec.ok && ownsConversation(p, rec.record.key)) ids.add(rec.record.id);
  }
  return [...ids].sort();
}

/** Shared per-channel sandboxes the person spoke in (their messages' conversations). */
async function sharedSandboxIds(store: Pick<Store, "kv">, p: Person): Promise<string[]> {
  const ids = new Set<string>();
  for await (const { value } of scanKeys(store.kv, "msg:")) {
    const rec = decodeRecord(MessageRecord, value);
    if (rec.ok && userKeyOf(rec.record.origin) === p.userKey) ids.add(rec.record.conversationId);
  }
  for (const id of [...ids]) {
    const conv = decodeRecord(ConversationRecord, (await store.kv.get(`conv:${id}`)) ?? "");
    if (!conv.ok || conv.record.key.userId !== SHARED_USER) ids.delete(id);
  }
  return [...ids].sort();
}

/** The pi session files of a sandbox, when its volume is readable here (not a stopped disk image). */
async function transcripts(volumeDir: string, budget: { bytes: number }) {
  const dir = join(volumeDir, TRANSCRIPTS_DIR);
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith(".jsonl")).sort();
  } catch {
    return [];
  }
  const out: { file: string; content?: string; omitted?: string }[] = [];
  for (const name of names) {
    const size = (await stat(join(dir, name))).size;
    if (size > budget.bytes) {
      out.push({ file: name, omitted: `${size} bytes: over what one export carries` });
      continue;
    }
    budget.bytes -= size;
    out.push({ file: name, content: await readFile(join(dir, name), "utf8") });
  }
  return out;
}

interface SandboxDeps {
  store: Pick<Store, "kv" | "queue">;
  sandboxes: Pick<SandboxManager, "destroy" | "volumeDir" | "record">;
  placeholders: Pick<PlaceholderRegistry, "revokeSandbox">;
}

/**
 * Why the person cannot be erased now: a message of theirs (or one for their
 * own sandbox) is queued or running on some gateway. Erasing under a running
 * turn would race its writes; the person (or operator) stops it or waits.
 */
async function busy(d: SandboxDeps, p: Person): Promise<string | undefined> {
  const own = new Set(await ownSandboxIds(d.store, p));
  for (const m of await d.store.queue.pending(undefined, { limit: QUEUE_SCAN })) {
    const turn = decodeRecord(QueuedTurn, m.payload);
    if (own.has(m.partition) || (turn.ok && userKeyOf(turn.record.origin) === p.userKey))
      return `message ${turn.ok ? turn.record.messageId : m.id} is queued or running`;
  }
  return undefined;
}

/**
 * The person's sandboxes: their own are stopped and destroyed (volume, disk
 * image, snapshots, skills folder, record, placeholders). A shared
 * per-channel sandbox belongs to the channel and is kept: the erasure report
 * names the ones the person spoke in (docs/retention.md).
 */
export function sandboxesData(d: SandboxDeps): PersonDataKind {
  return {
    name: "sandboxes",
    busy: (p) => busy(d, p),
    export: async (p) => {
      const budget = { bytes: EXPORT_TRANSCRIPT_BYTES };
      const own = [];
      for (const id of await ownSandboxIds(d.store, p)) {
        const record = await d.sandboxes.record(id);
        own.push({
          id,
          ...(record ? { label: record.label, lastActiveAt: record.lastActiveAt } : {}),
          transcripts: await transcripts(d.sandboxes.volumeDir(id), budget),
        });
      }
      return { own, sharedChannelSandboxes: await sharedSandboxIds(d.store, p) };
    },
    erase: async (p) => {
      const shared = await sharedSandboxIds(d.store, p);
      let destroyed = 0;
      let placeholders = 0;
      for (const id of await ownSandboxIds(d.store, p)) {
        if (await d.sandboxes.destroy(id)) destroyed++;
        placeholders += await d.placeholders.revokeSandbox(id);
      }
      return { sandboxes: destroyed, placeholders, sharedChannelSandboxesKept: shared.length };
    },
  };
}

/** Questions, approvals and capability requests the person was asked. */
export function requestsData(store: Pick<Store, "kv">): PersonDataKind {
  const theirs = async (p: Person) => {
    const out: PendingRequest[] = [];
    for await (const { value } of scanKeys(store.kv, "req:")) {
      const rec = decodeRecord(PendingRequest, value);
      if (rec.ok && userKeyOf(rec.record.origin) === p.userKey) out.push(rec.record);
    }
    return out;
  };
  return {
    name: "requests",
    export: (p) => theirs(p),
    erase: async (p) => {
      let requests = 0;
      for (const r of await theirs(p)) if (await store.kv.del(requestKey(r.requestId))) requests++;
      return { requests };
    },
  };
}
