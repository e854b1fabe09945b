import { SHARED_USER } from "@lobu/core";
import { type Origin, userKeyOf } from "../domain/origin.ts";
import { ownsConversation, type Person, type PersonDataKind } from "../domain/person-data.ts";
import type { Store } from "../store/port.ts";
import { scanKeys } from "../store/scan.ts";
import { decodeRecord } from "../util/stored-record.ts";
import {
  ConversationRecord,
  convIndexKey,
  convKey,
  eventsStream,
  HistoryEntry,
  historyStream,
  MessageRecord,
  msgKey,
} from "./records.ts";

/** Most history entries one conversation contributes to an export. */
const EXPORT_HISTORY_MAX = 10_000;

interface Found {
  /** The person's own conversations (DMs, per-user group threads). */
  own: ConversationRecord[];
  /** Shared per-channel conversations of the person's platform and workspace. */
  shared: ConversationRecord[];
  /** Message records the person sent, in any conversation. */
  messages: MessageRecord[];
}

const samePerson = (p: Person, origin: Origin) => userKeyOf(origin) === p.userKey;

async function find(store: Store, p: Person): Promise<Found> {
  const found: Found = { own: [], shared: [], messages: [] };
  for await (const { value } of scanKeys(store.kv, "conv:")) {
    const rec = decodeRecord(ConversationRecord, value);
    if (!rec.ok) continue;
    const c = rec.record;
    if (ownsConversation(p, c.key)) found.own.push(c);
    else if (
      c.key.userId === SHARED_USER &&
      c.key.platform === p.platform &&
      (c.key.workspace ?? "") === p.workspace
    )
      found.shared.push(c);
  }
  for await (const { value } of scanKeys(store.kv, "msg:")) {
    const rec = decodeRecord(MessageRecord, value);
    if (rec.ok && samePerson(p, rec.record.origin)) found.messages.push(rec.record);
  }
  return found;
}

async function historyOf(store: Store, id: string) {
  const entries = await store.streams.range(historyStream(id), { limit: EXPORT_HISTORY_MAX });
  return entries.flatMap((e) => {
    const d = decodeRecord(HistoryEntry, e.data);
    return d.ok ? [{ id: e.id, entry: d.record }] : [];
  });
}

/** A history entry of a shared conversation that is the person's: their message or the reply to it. */
function theirs(p: Person, entry: HistoryEntry, messageIds: Set<string>): boolean {
  return messageIds.has(entry.messageId) || (entry.role === "user" && entry.user === p.userId);
}

/**
 * Conversations, their history, message records and turn events. A person's
 * own conversations go whole. In a shared per-channel conversation (one
 * agent for everyone in the channel) only what is theirs goes: their messages
 * and the agent's replies to them; the rest belongs to the channel.
 */
export function conversationsData(store: Store): PersonDataKind {
  return {
    name: "conversations",
    export: async (p) => {
      const found = await find(store, p);
      const ids = new Set(found.messages.map((m) => m.id));
      const own = await Promise.all(
        found.own.map(async (c) => ({
          conversation: c,
          history: (await historyOf(store, c.id)).map((h) => h.entry),
        })),
      );
      const shared = await Promise.all(
        found.shared.map(async (c) => ({
          conversationId: c.id,
          agentId: c.key.agentId,
          channelId: c.key.channelId,
          history: (await historyOf(store, c.id))
            .filter((h) => theirs(p, h.entry, ids))
            .map((h) => h.entry),
        })),
      );
      return {
        conversations: own,
        sharedChannels: shared.filter((s) => s.history.length > 0),
        messages: found.messages,
      };
    },
    erase: async (p) => {
      const found = await find(store, p);
      const ids = new Set(found.messages.map((m) => m.id));
      let historyEntries = 0;
      for (const c of found.own) {
        await store.streams.delete(historyStream(c.id));
        await store.kv.del(convIndexKey(c.key.agentId, c.id));
        await store.kv.del(convKey(c.id));
      }
      for (const c of found.shared) {
        const mine = (await historyOf(store, c.id)).filter((h) => theirs(p, h.entry, ids));
        historyEntries += await store.streams.remove(
          historyStream(c.id),
          mine.map((h) => h.id),
        );
        // The conversation's latest origin may name the person: keep the record, drop the name.
        if (samePerson(p, c.origin))
          await store.kv.update(convKey(c.id), (raw) => {
            const current = raw === null ? undefined : decodeRecord(ConversationRecord, raw);
            if (!current?.ok) return undefined; // gone, or unreadable (replaced by the next message)
            const { userName: _name, ...origin } = current.record.origin;
            return JSON.stringify({
              ...current.record,
              origin: { ...origin, userId: SHARED_USER },
            });
          });
      }
      for (const m of found.messages) {
        await store.streams.delete(eventsStream(m.id));
        await store.kv.del(msgKey(m.id));
      }
      return {
        conversations: found.own.length,
        messages: found.messages.length,
        sharedHistoryEntries: historyEntries,
      };
    },
  };
}
