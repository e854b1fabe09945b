import type { AgentEvent, ConversationKey } from "@lobu/core";
import type { Origin } from "../domain/origin.ts";
import type { Store, StreamEntry } from "../store/port.ts";

export type MessageStatus = "queued" | "running" | "done" | "error";

export interface MessageRecord {
  id: string;
  conversationId: string;
  agentId: string;
  origin: Origin;
  text: string;
  status: MessageStatus;
  reply?: string;
  error?: { code: string; message: string };
  createdAt: number;
  startedAt?: number;
  completedAt?: number;
  attempts?: number;
  /** Deliveries that did not count against the message's attempts (runtime/attempts.ts). */
  unchargedAttempts?: number;
}

export interface ConversationRecord {
  /** Same as the sandbox id: one conversation, one sandbox. */
  id: string;
  key: ConversationKey;
  /** Latest origin (where the conversation was last active). */
  origin: Origin;
  createdAt: number;
  lastMessageAt: number;
}

export interface HistoryEntry {
  role: "user" | "assistant" | "error";
  text: string;
  messageId: string;
  at: number;
  user?: string;
}

const MESSAGE_TTL_MS = 30 * 86_400_000;
const EVENTS_TTL_MS = 86_400_000;
const HISTORY_MAX = 10_000;

const msgKey = (id: string) => `msg:${id}`;
const convKey = (id: string) => `conv:${id}`;
const convIndexKey = (agentId: string, id: string) => `convidx:${agentId}:${id}`;
const historyStream = (conversationId: string) => `hist:${conversationId}`;
export const eventsStream = (messageId: string) => `ev:${messageId}`;

/** Messages, conversations, history and per-message event logs, on the store port. */
export class Conversations {
  private readonly store: Store;

  constructor(store: Store) {
    this.store = store;
  }

  async putMessage(rec: MessageRecord): Promise<void> {
    await this.store.kv.set(msgKey(rec.id), JSON.stringify(rec), { ttlMs: MESSAGE_TTL_MS });
  }

  async deleteMessage(id: string): Promise<void> {
    await this.store.kv.del(msgKey(id));
  }

  async getMessage(id: string): Promise<MessageRecord | null> {
    const raw = await this.store.kv.get(msgKey(id));
    return raw ? (JSON.parse(raw) as MessageRecord) : null;
  }

  async updateMessage(id: string, patch: Partial<MessageRecord>): Promise<MessageRecord | null> {
    for (let i = 0; i < 10; i++) {
      const raw = await this.store.kv.get(msgKey(id));
      if (!raw) return null;
      const next = { ...(JSON.parse(raw) as MessageRecord), ...patch };
      if (
        await this.store.kv.compareAndSet(msgKey(id), raw, JSON.stringify(next), {
          ttlMs: MESSAGE_TTL_MS,
        })
      ) {
        return next;
      }
    }
    return null;
  }

  async touchConversation(
    id: string,
    key: ConversationKey,
    origin: Origin,
  ): Promise<ConversationRecord> {
    const now = Date.now();
    const raw = await this.store.kv.get(convKey(id));
    const prev = raw ? (JSON.parse(raw) as ConversationRecord) : undefined;
    const rec: ConversationRecord = {
      id,
      key,
      origin,
      createdAt: prev?.createdAt ?? now,
      lastMessageAt: now,
    };
    await this.store.kv.set(convKey(id), JSON.stringify(rec));
    if (!prev) await this.store.kv.set(convIndexKey(key.agentId, id), "1");
    return rec;
  }

  async getConversation(id: string): Promise<ConversationRecord | null> {
    const raw = await this.store.kv.get(convKey(id));
    return raw ? (JSON.parse(raw) as ConversationRecord) : null;
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
      .filter((r): r is string => r !== null)
      .map((r) => JSON.parse(r) as ConversationRecord)
      .filter((c) => !opts.userId || c.key.userId === opts.userId)
      .sort((a, b) => b.lastMessageAt - a.lastMessageAt)
      .slice(0, opts.limit ?? 100);
  }

  async appendHistory(conversationId: string, entry: HistoryEntry): Promise<void> {
    await this.store.streams.append(historyStream(conversationId), JSON.stringify(entry), {
      maxLen: HISTORY_MAX,
    });
  }

  async history(
    conversationId: string,
    opts: { after?: string; limit?: number } = {},
  ): Promise<(HistoryEntry & { cursor: string })[]> {
    const entries = await this.store.streams.range(historyStream(conversationId), opts);
    return entries.map((e) => ({ ...(JSON.parse(e.data) as HistoryEntry), cursor: e.id }));
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
    const entries: StreamEntry[] = await this.store.streams.read(
      eventsStream(messageId),
      after,
      opts,
    );
    return entries.map((e) => ({ id: e.id, event: JSON.parse(e.data) as AgentEvent }));
  }
}
