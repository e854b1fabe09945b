import { AgentEvent, ConversationKey, TurnFailureCode } from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import { Origin } from "../domain/origin.ts";
import type { Store, StreamEntry } from "../store/port.ts";
import { type RecordSource, readRecord } from "../util/stored-record.ts";

export const MessageStatus = z.enum(["queued", "running", "done", "error", "stopped"]);
export type MessageStatus = z.infer<typeof MessageStatus>;

/** A message and where its turn stands (stored as `msg:<id>`). */
export const MessageRecord = z.object({
  id: z.string().min(1),
  conversationId: z.string(),
  agentId: z.string(),
  origin: Origin,
  text: z.string(),
  status: MessageStatus,
  reply: z.string().optional(),
  error: z.object({ code: TurnFailureCode, message: z.string() }).optional(),
  createdAt: z.number(),
  startedAt: z.number().optional(),
  completedAt: z.number().optional(),
  attempts: z.number().optional(),
  /** Deliveries that did not count against the message's attempts (runtime/attempts.ts). */
  unchargedAttempts: z.number().optional(),
});
export type MessageRecord = z.infer<typeof MessageRecord>;

/** Stored as `conv:<id>`. */
export const ConversationRecord = z.object({
  /** Same as the sandbox id: one conversation, one sandbox. */
  id: z.string().min(1),
  key: ConversationKey,
  /** Latest origin (where the conversation was last active). */
  origin: Origin,
  createdAt: z.number(),
  lastMessageAt: z.number(),
});
export type ConversationRecord = z.infer<typeof ConversationRecord>;

/** One entry of a conversation's history stream (`hist:<id>`). */
export const HistoryEntry = z.object({
  role: z.enum(["user", "assistant", "error"]),
  text: z.string(),
  messageId: z.string(),
  at: z.number(),
  user: z.string().optional(),
});
export type HistoryEntry = z.infer<typeof HistoryEntry>;

const MESSAGE_TTL_MS = 30 * 86_400_000;
const EVENTS_TTL_MS = 86_400_000;
const HISTORY_MAX = 10_000;

export const msgKey = (id: string) => `msg:${id}`;
export const convKey = (id: string) => `conv:${id}`;
export const convIndexKey = (agentId: string, id: string) => `convidx:${agentId}:${id}`;
export const historyStream = (conversationId: string) => `hist:${conversationId}`;
export const eventsStream = (messageId: string) => `ev:${messageId}`;

/**
 * Messages, conversations, history and per-message event logs, on the store
 * port. A record that does not read back as what was written is logged and
 * reads as absent (lists and streams skip it); it is never handed on.
 */
export class Conversations {
  private readonly store: Store;
  private readonly log: Logger;

  constructor(store: Store, log: Logger) {
    this.store = store;
    this.log = log;
  }

  async putMessage(rec: MessageRecord): Promise<void> {
    await this.store.kv.set(msgKey(rec.id), JSON.stringify(rec), { ttlMs: MESSAGE_TTL_MS });
  }

  async deleteMessage(id: string): Promise<void> {
    await this.store.kv.del(msgKey(id));
  }

  async getMessage(id: string): Promise<MessageRecord | null> {
    const raw = await this.store.kv.get(msgKey(id));
    return raw === null ? null : (this.#message(id, raw) ?? null);
  }

  /**
   * Apply `patch` to the message; null when there is no (readable) message.
   * Throws `conflict` if the record keeps changing under it (kv.update).
   */
  async updateMessage(id: string, patch: Partial<MessageRecord>): Promise<MessageRecord | null> {
    let next = null as MessageRecord | null;
    await this.store.kv.update(
      msgKey(id),
      (raw) => {
        const current = raw === null ? undefined : this.#message(id, raw);
        next = current ? { ...current, ...patch } : null;
        return next ? JSON.stringify(next) : undefined;
      },
      { ttlMs: MESSAGE_TTL_MS },
    );
    return next;
  }

  async touchConversation(
    id: string,
    key: ConversationKey,
    origin: Origin,
  ): Promise<ConversationRecord> {
    const now = Date.now();
    let rec!: ConversationRecord;
    let known = false;
    await this.store.kv.update(convKey(id), (raw) => {
      // An unreadable record is replaced by this one (its createdAt is lost; logged).
      const prev = raw === null ? undefined : this.#conversation(id, raw, "replaced");
      known = raw !== null;
      rec = { id, key, origin, createdAt: prev?.createdAt ?? now, lastMessageAt: now };
      return JSON.stringify(rec);
    });
    if (!known) await this.store.kv.set(convIndexKey(key.agentId, id), "1");
    return rec;
  }

  async getConversation(id: string): Promise<ConversationRecord | null> {
    const raw = await this.store.kv.get(convKey(id));
    return raw === null ? null : (this.#conversation(id, raw) ?? null);
  }

  async listConversations(
    agentId: string,
    opts: { userId?: string; limit?: number } = {},
  ): Promise<ConversationRecord[]> {
    const ids = (await this.store.kv.list(`convidx:${agentId}:`)).map((e) =>
      e.key.slice(`convidx:${agentId}:`.length),
    );
    const raws = await this.store.kv.getMany(ids.map(convKey));
    return raws
      .flatMap((r, i) => (r === null ? [] : (this.#conversation(ids[i]!, r) ?? [])))
      .filter((c) => !opts.userId || c.key.userId === opts.userId)
      .sort((a, b) => b.lastMessageAt - a.lastMessageAt)
      .slice(0, opts.limit ?? 100);
  }

  async appendHistory(conversationId: string, entry: HistoryEntry): Promise<void> {
    await this.store.streams.append(historyStream(conversationId), JSON.stringify(entry), {
      maxLen: HISTORY_MAX,
    });
  }

  /** History entries after `after`; unreadable ones are skipped, and the page is filled past them. */
  async history(
    conversationId: string,
    opts: { after?: string; limit?: number } = {},
  ): Promise<(HistoryEntry & { cursor: string })[]> {
    const stream = historyStream(conversationId);
    const out: (HistoryEntry & { cursor: string })[] = [];
    let after = opts.after;
    for (;;) {
      const want = opts.limit === undefined ? undefined : opts.limit - out.length;
      const entries = await this.store.streams.range(stream, {
        ...(after !== undefined ? { after } : {}),
        ...(want !== undefined ? { limit: want } : {}),
      });
      for (const e of entries) {
        const entry = this.#entry(HistoryEntry, "history entry", stream, e);
        if (entry) out.push({ ...entry, cursor: e.id });
      }
      if (want === undefined || entries.length < want || out.length === opts.limit) return out;
      after = entries[entries.length - 1]!.id;
    }
  }

  async appendEvent(messageId: string, event: AgentEvent): Promise<string> {
    return this.store.streams.append(eventsStream(messageId), JSON.stringify(event), {
      ttlMs: EVENTS_TTL_MS,
    });
  }

  async readEvents(
    messageId: string,
    after: string | undefined,
    opts: { blockMs: number; signal?: AbortSignal },
  ): Promise<{ id: string; event: AgentEvent }[]> {
    const stream = eventsStream(messageId);
    let cursor = after;
    for (;;) {
      const entries: StreamEntry[] = await this.store.streams.read(stream, cursor, opts);
      const events = entries.flatMap((e) => {
        const event = this.#entry(AgentEvent, "turn event", stream, e);
        return event ? [{ id: e.id, event }] : [];
      });
      // Only unreadable entries: read on past them, so a reader's cursor never sticks on one.
      if (events.length > 0 || entries.length === 0) return events;
      cursor = entries[entries.length - 1]!.id;
    }
  }

  #message(id: string, raw: string): MessageRecord | undefined {
    return this.#read(
      MessageRecord,
      raw,
      { record: "message", key: msgKey(id) },
      "reads as absent",
    );
  }

  #conversation(id: string, raw: string, what = "reads as absent"): ConversationRecord | undefined {
    return this.#read(ConversationRecord, raw, { record: "conversation", key: convKey(id) }, what);
  }

  #entry<T>(schema: z.ZodType<T>, record: string, stream: string, e: StreamEntry): T | undefined {
    return this.#read(schema, e.data, { record, key: `${stream} ${e.id}` }, "skipped");
  }

  #read<T>(schema: z.ZodType<T>, raw: string, source: RecordSource, what: string): T | undefined {
    return readRecord(schema, raw, source, this.log, what);
  }
}
