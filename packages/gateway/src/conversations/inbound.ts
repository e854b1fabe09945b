import { LobuError, newId, sandboxIdOf } from "@lobu/core";
import type { AgentRegistry } from "../agents/registry.ts";
import type { InboundMessage, SubmitResult } from "../domain/messages.ts";
import { type QueuedTurn, routeKey } from "../domain/turns.ts";
import type { MessageQueue } from "../store/port.ts";
import type { Conversations } from "./records.ts";

const DEDUPE_TTL_MS = 24 * 3_600_000;

/**
 * The one entrance for user messages from every channel (REST API and platform
 * adapters): validate, route, store durably, and only then report success.
 */
export class Inbound {
  private readonly agents: AgentRegistry;
  private readonly queue: MessageQueue;
  private readonly conversations: Conversations;
  private readonly maxMessageBytes: number;

  constructor(deps: {
    agents: AgentRegistry;
    queue: MessageQueue;
    conversations: Conversations;
    maxMessageBytes: number;
  }) {
    this.agents = deps.agents;
    this.queue = deps.queue;
    this.conversations = deps.conversations;
    this.maxMessageBytes = deps.maxMessageBytes;
  }

  /**
   * The conversation a message from `origin` goes to, without storing
   * anything: what a `stop` in a chat names. It must pick the agent exactly
   * as `submit` does (channel bindings included), or a stop would name
   * another conversation.
   */
  async conversationOf(message: Pick<InboundMessage, "origin" | "agentId">): Promise<string> {
    const agent = message.agentId
      ? await this.agents.require(message.agentId)
      : await this.agents.defaultAgent();
    return sandboxIdOf(routeKey(agent.id, agent.groupRouting, message.origin));
  }

  async submit(message: InboundMessage): Promise<SubmitResult & { conversationId: string }> {
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
    if (!message.text.trim()) {
      throw new LobuError("message_empty", "message text is empty", { status: 400 });
    }
    const agent = message.agentId
      ? await this.agents.require(message.agentId)
      : await this.agents.defaultAgent();
    const key = routeKey(agent.id, agent.groupRouting, message.origin);
    const conversationId = sandboxIdOf(key);
    const messageId = newId("msg");
    const turn: QueuedTurn = {
      messageId,
      conversationId,
      key,
      origin: message.origin,
      text: message.text,
      receivedAt: Date.now(),
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
}
