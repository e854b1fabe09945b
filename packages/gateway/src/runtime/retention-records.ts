import { AUDIT_STREAM, AuditRecord, USAGE_STREAM } from "../audit/log.ts";
import {
  ConversationRecord,
  convIndexKey,
  convKey,
  eventsStream,
  HistoryEntry,
  historyStream,
  MessageRecord,
  msgKey,
} from "../conversations/records.ts";
import type { Store } from "../store/port.ts";
import { scanKeys, streamEntries } from "../store/scan.ts";
import { decodeRecord } from "../util/stored-record.ts";
import type { Cutoffs } from "./retention-policy.ts";

/** An agent's cutoffs (and the installation's for records of no agent). */
export type CutoffsOf = (agentId: string | undefined) => Cutoffs;

export interface RecordsSwept {
  historyEntries: number;
  conversations: number;
  messages: number;
  eventStreams: number;
  usageCounters: number;
  usageRecords: number;
  auditRecords: number;
}

/** When a stored record happened: its own timestamp, which a retention compares. */
const olderThan = (at: number, cutoff: number | undefined) => cutoff !== undefined && at < cutoff;

/**
 * Conversations: history entries older than `transcripts` go; a conversation
 * whose last message is older goes whole. Messages: a finished message older
 * than `transcripts` goes with its events; its events alone go after
 * `events`. A queued or running message is never touched (its turn runs).
 */
async function sweepConversations(store: Store, of: CutoffsOf, out: RecordsSwept): Promise<void> {
  for await (const { value } of scanKeys(store.kv, "conv:")) {
    const rec = decodeRecord(ConversationRecord, value);
    if (!rec.ok) continue;
    const c = rec.record;
    const cutoff = of(c.key.agentId).transcripts;
    if (cutoff === undefined) continue;
    const stream = historyStream(c.id);
    const old: string[] = [];
    for await (const e of streamEntries(store, stream)) {
      const entry = decodeRecord(HistoryEntry, e.data);
      if (!entry.ok || olderThan(entry.record.at, cutoff)) old.push(e.id);
    }
    out.historyEntries += await store.streams.remove(stream, old);
    if (olderThan(c.lastMessageAt, cutoff)) {
      await store.streams.delete(stream);
      await store.kv.del(convIndexKey(c.key.agentId, c.id));
      await store.kv.del(convKey(c.id));
      out.conversations++;
    }
  }
  for await (const { value } of scanKeys(store.kv, "msg:")) {
    const rec = decodeRecord(MessageRecord, value);
    if (!rec.ok) continue;
    const m = rec.record;
    if (m.status !== "done" && m.status !== "error") continue;
    const cutoffs = of(m.agentId);
    const at = m.completedAt ?? m.createdAt;
    if (olderThan(at, cutoffs.transcripts)) {
      await store.kv.del(msgKey(m.id));
      out.messages++;
    }
    if (olderThan(at, cutoffs.transcripts) || olderThan(at, cutoffs.events)) {
      if ((await store.streams.length(eventsStream(m.id))) > 0) out.eventStreams++;
      await store.streams.delete(eventsStream(m.id));
    }
  }
}

/** `usage:m:<day>:<agent>:…` and the older `usage:<day>:<agent>:…`: the day and the agent. */
const COUNTER = /^usage:(?:m:)?(\d{4}-\d{2}-\d{2}):([^:]+):/;

/** Usage counters of days before `usage` (a day goes once all of it is older), and usage records. */
async function sweepUsage(store: Store, of: CutoffsOf, out: RecordsSwept): Promise<void> {
  for await (const { key } of scanKeys(store.kv, "usage:")) {
    const m = COUNTER.exec(key);
    if (!m) continue;
    const cutoff = of(m[2]).usage;
    const dayEnd = Date.parse(`${m[1]}T00:00:00Z`) + 86_400_000;
    if (olderThan(dayEnd, cutoff) && (await store.kv.del(key))) out.usageCounters++;
  }
  const old: string[] = [];
  for await (const e of streamEntries(store, USAGE_STREAM)) {
    let entry: { at?: unknown; agentId?: unknown };
    try {
      entry = JSON.parse(e.data) as typeof entry;
    } catch {
      continue;
    }
    const agentId = typeof entry.agentId === "string" ? entry.agentId : undefined;
    if (typeof entry.at === "number" && olderThan(entry.at, of(agentId).usage)) old.push(e.id);
  }
  out.usageRecords += await store.streams.remove(USAGE_STREAM, old);
}

/** Audit records older than their agent's `audit` (the installation's for records of no agent). */
async function sweepAudit(store: Store, of: CutoffsOf, out: RecordsSwept): Promise<void> {
  const old: string[] = [];
  for await (const e of streamEntries(store, AUDIT_STREAM)) {
    const rec = decodeRecord(AuditRecord, e.data);
    if (rec.ok && olderThan(rec.record.at, of(rec.record.agentId).audit)) old.push(e.id);
  }
  out.auditRecords += await store.streams.remove(AUDIT_STREAM, old);
}

/** The store's part of a retention sweep (run by one gateway at a time). */
export async function sweepRecords(store: Store, of: CutoffsOf): Promise<RecordsSwept> {
  const out: RecordsSwept = {
    historyEntries: 0,
    conversations: 0,
    messages: 0,
    eventStreams: 0,
    usageCounters: 0,
    usageRecords: 0,
    auditRecords: 0,
  };
  await sweepConversations(store, of, out);
  await sweepUsage(store, of, out);
  await sweepAudit(store, of, out);
  return out;
}
