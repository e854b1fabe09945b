import { type ChannelSection, isLobuError, LobuError, newId, sandboxIdOf } from "@lobu/core";
import type { Logger } from "pino";
import { channelKeyOf, checkAccess, openAccess, type Refusal } from "../agents/access.ts";
import { ambientMatches, inChannel } from "../agents/channels.ts";
import type { AgentRegistry } from "../agents/registry.ts";
import type { InboundMessage, SubmitResult } from "../domain/messages.ts";
import { userKeyOf } from "../domain/origin.ts";
import { type QueuedTurn, routeKey } from "../domain/turns.ts";
import type { KeyValue, MessageQueue } from "../store/port.ts";
import { SpanKind, traceparentOfSpan, tracer } from "../telemetry/otel.ts";
import type { Conversations } from "./records.ts";

const DEDUPE_TTL_MS = 24 * 3_600_000;
const MINUTE_MS = 60_000;
/** A person refused in a chat is told once in this long (per channel and reason), not per message. */
const REFUSAL_NOTICE_MS = 10 * MINUTE_MS;

/**
 * A message passed over without a word: an ambient one the channel's rule or
 * rate leaves alone, or a quiet refusal (bots, deactivated accounts).
 */
const IGNORED = { duplicate: false, messageId: "", conversationId: "", ignored: true } as const;

/**
 * The one entrance for user messages from every channel (REST API and platform
 * adapters): validate, route, store durably, and only then report success.
 */
export class Inbound {
  private readonly agents: AgentRegistry;
  private readonly queue: MessageQueue;
  private readonly conversations: Conversations;
  private readonly maxMessageBytes: number;
  private readonly counters: Pick<KeyValue, "incr" | "set"> | undefined;
  private readonly log: Logger | undefined;

  constructor(deps: {
    agents: AgentRegistry;
    queue: MessageQueue;
    conversations: Conversations;
    maxMessageBytes: number;
    /**
     * Ambient answers per channel and minute are counted here, and refusal
     * notices remembered (shared by every gateway).
     */
    counters?: Pick<KeyValue, "incr" | "set">;
    log?: Logger;
  }) {
    this.agents = deps.agents;
    this.queue = deps.queue;
    this.conversations = deps.conversations;
    this.maxMessageBytes = deps.maxMessageBytes;
    this.counters = deps.counters;
    this.log = deps.log;
  }

  /**
   * The conversation a message from `origin` goes to, without storing
   * anything: what a `stop` in a chat names. It must pick the agent exactly
   * as `submit` does (channel bindings included), or a stop would name
   * another conversation.
   */
  async conversationOf(message: Pick<InboundMessage, "origin" | "agentId">): Promise<string> {
    const agent = await this.agents.forMessage(message.origin, message.agentId);
    return sandboxIdOf(routeKey(agent.id, agent.groupRouting, message.origin));
  }

  async submit(message: InboundMessage): Promise<SubmitResult & { conversationId: string }> {
    if (!message.ambient) return this.#take(message);
    // Nobody asked the agent: whatever keeps it from answering, it stays quiet.
    const channel = this.agents.channels.of(message.origin);
    if (!channel || !ambientMatches(channel.ambient, message.text)) return IGNORED;
    try {
      return await this.#take(message, channel);
    } catch (err) {
      if (isLobuError(err) && err.status < 500) return IGNORED;
      throw err;
    }
  }

  /**
   * What the agent's access rules say about a message, without taking it:
   * the refusal, or undefined. Platforms ask it when the agent is added to
   * a channel, to tell the inviter at once that it will not answer there.
   */
  async refusal(
    message: Pick<InboundMessage, "origin" | "facts" | "agentId">,
  ): Promise<Refusal | undefined> {
    const agent = await this.agents.forMessage(message.origin, message.agentId);
    return checkAccess(agent.access ?? openAccess(), message.origin, message.facts);
  }

  async #take(
    message: InboundMessage,
    ambientIn?: ChannelSection,
  ): Promise<SubmitResult & { conversationId: string }> {
    const bytes = Buffer.byteLength(message.text, "utf8");
    if (bytes > this.maxMessageBytes) {
      throw new LobuError(
        "message_too_large",
        `message is ${bytes} bytes; the limit is ${this.maxMessageBytes}`,
        {
          status: 413,
          hint: "Send a shorter message, or split it into several.",
        },
      );
    }
    const files = message.files ?? [];
    if (!message.text.trim() && files.length === 0) {
      throw new LobuError("message_empty", "message text is empty", {
        status: 400,
        hint: "Send some text, or attach a file.",
      });
    }
    const agent = await this.agents.forMessage(message.origin, message.agentId);
    // Before anything is stored or started: a refusal costs no queue entry, sandbox or model call.
    const refusal = await checkAccess(agent.access ?? openAccess(), message.origin, message.facts);
    if (refusal) {
      this.log?.info(
        { agentId: agent.id, user: userKeyOf(message.origin), reason: refusal.reason },
        "message refused by the agent's access rules",
      );
      if (refusal.quiet || (await this.#toldAlready(message, refusal.reason))) return IGNORED;
      throw new LobuError("access_denied", refusal.message, {
        details: { reason: refusal.reason },
      });
    }
    if (ambientIn && !(await this.#ambientSlot(message, ambientIn))) return IGNORED;
    const persona = inChannel(agent, this.agents.channels.of(message.origin)).persona;
    const key = routeKey(agent.id, agent.groupRouting, message.origin);
    const conversationId = sandboxIdOf(key);
    const messageId = newId("msg");
    // The message's trace starts here (under the webhook's HTTP span, if any) and goes on in the queue.
    const span = tracer.startSpan("lobu.inbound", {
      kind: SpanKind.PRODUCER,
      attributes: {
        "lobu.agent": agent.id,
        "lobu.platform": message.origin.platform,
        "lobu.sandbox": conversationId,
        "lobu.message": messageId,
      },
    });
    try {
      return await this.#queue(
        message,
        { agent, key, conversationId, messageId, persona, files },
        traceparentOfSpan(span),
      );
    } finally {
      span.end();
    }
  }

  async #queue(
    message: InboundMessage,
    m: {
      agent: { id: string };
      key: QueuedTurn["key"];
      conversationId: string;
      messageId: string;
      persona: QueuedTurn["persona"];
      files: NonNullable<InboundMessage["files"]>;
    },
    traceparent: string | undefined,
  ): Promise<SubmitResult & { conversationId: string }> {
    const { agent, key, conversationId, messageId, persona, files } = m;
    const turn: QueuedTurn = {
      messageId,
      conversationId,
      key,
      origin: message.origin,
      text: message.text,
      receivedAt: Date.now(),
      ...(files.length ? { files } : {}),
      ...(persona ? { persona } : {}),
      ...(traceparent ? { traceparent } : {}),
      ...(message.scheduleId ? { scheduleId: message.scheduleId } : {}),
    };
    // Record first: a message that is queued always has a record to report on, and
    // its conversation exists before a turn can start (the egress policy needs it).
    await this.conversations.touchConversation(conversationId, key, message.origin);
    await this.conversations.putMessage({
      id: messageId,
      conversationId,
      agentId: agent.id,
      origin: message.origin,
      text: message.text,
      status: "queued",
      createdAt: turn.receivedAt,
    });
    const { id, duplicate } = await this.queue.enqueue(conversationId, JSON.stringify(turn), {
      id: messageId,
      dedupeKey: `${message.origin.platform}:${message.eventId}`,
      dedupeTtlMs: DEDUPE_TTL_MS,
    });
    if (duplicate) {
      await this.conversations.deleteMessage(messageId);
      return { duplicate: true, messageId: id, conversationId };
    }
    return { duplicate: false, messageId, conversationId };
  }

  /**
   * Whether this person was told of the same refusal in this chat channel a
   * moment ago: someone who keeps writing is not answered every time (each
   * answer is a platform call). The REST API always answers 403.
   */
  async #toldAlready(message: InboundMessage, reason: string): Promise<boolean> {
    if (!this.counters || message.origin.platform === "api") return false;
    const key = `refusal-told:${userKeyOf(message.origin)}:${channelKeyOf(message.origin)}:${reason}`;
    const first = await this.counters.set(key, "1", {
      ifNotExists: true,
      ttlMs: REFUSAL_NOTICE_MS,
    });
    return !first;
  }

  /** Whether the channel's ambient rate (per minute, fixed windows) has room for one more answer. */
  async #ambientSlot(message: InboundMessage, channel: ChannelSection): Promise<boolean> {
    if (!this.counters) return true;
    const window = Math.floor(Date.now() / MINUTE_MS);
    const used = await this.counters.incr(`ambient:${channelKeyOf(message.origin)}:${window}`, 1, {
      ttlMs: 2 * MINUTE_MS,
    });
    return used <= channel.ambient.per_minute;
  }
}
