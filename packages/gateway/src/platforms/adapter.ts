import type { AgentEvent, RequestAnswer } from "@lobu/core";
import type { Logger } from "pino";
import type { PlatformRoutes } from "./shared/routes.ts";

/**
 * Platform adapters are thin: they turn a platform's inbound events into
 * InboundMessage and render a turn's AgentEvent stream with the platform's native
 * UI. Routing, queueing, sandboxes and policy never live in an adapter.
 */

/**
 * A file attached to a chat message. Not fetched yet: the gateway does not
 * download attachments into the sandbox, and Inbound does not store them; the
 * adapters only name them in the message text (shared/inbound.ts messageText).
 */
export interface InboundFile {
  name: string;
  mimeType?: string;
  size?: number;
  /** Platform URL the gateway could fetch with the bot's credentials (Slack url_private). */
  url?: string;
}

/** Where replies to a message go, and who it came from. Serializable (stored with the message). */
export interface Origin {
  platform: string;
  /** Slack team id; empty on platforms without workspaces. */
  workspace?: string;
  channelId: string;
  /** Thread the conversation lives in (Slack thread_ts, Telegram forum topic id). */
  threadId?: string;
  userId: string;
  userName?: string;
  isDirect: boolean;
  /** Platform message id of the user's message (for reactions/replies). */
  messageRef?: string;
}

export interface InboundMessage {
  origin: Origin;
  text: string;
  /** What the platform said was attached; described in `text`, not passed on (see InboundFile). */
  files?: InboundFile[];
  /** Platform id of this delivery; retried webhooks carry the same id and are delivered once. */
  eventId: string;
  /** Agent to route to when the adapter knows (a bot bound to one agent); otherwise the default. */
  agentId?: string;
}

export interface SubmitResult {
  accepted: boolean;
  duplicate: boolean;
  messageId?: string;
  reason?: string;
}

/** What the gateway gives an adapter when it starts. */
export interface AdapterContext {
  /**
   * Webhook routes (mounted at the gateway root). Every route is behind the
   * platform body limit, enforced while the body is read (shared/routes.ts).
   */
  routes: PlatformRoutes;
  log: Logger;
  /** Base URL browsers use to reach the gateway (settings links, Mini App). */
  publicUrl: string;
  /** Durably enqueue a message; resolves once it is stored (ack to the platform after). */
  submit(message: InboundMessage): Promise<SubmitResult>;
  /**
   * A user clicked a button / answered a request shown by this adapter. Only the
   * person whose message started the turn may answer; `who` is the clicker.
   */
  answer(
    requestId: string,
    answer: RequestAnswer,
    who: Pick<Origin, "platform" | "workspace" | "userId" | "userName">,
  ): Promise<{ ok: boolean; reason?: string }>;
  /** One-time settings link for the user of this origin (claim code). */
  settingsLink(origin: Origin): Promise<string>;
  /** Key-value access for adapter state (installations, dedupe), namespaced per adapter. */
  state: {
    get(key: string): Promise<string | null>;
    set(key: string, value: string, ttlMs?: number): Promise<void>;
    del(key: string): Promise<void>;
    /** Read and delete in one step (single-use values such as OAuth state). */
    take(key: string): Promise<string | null>;
  };
  /**
   * Single-use markers shared by every gateway on the store: a signed request,
   * or a redelivered update, is handled once (keys are stored as digests).
   */
  once: {
    /** True the first time `key` is claimed within `ttlMs`; false for a repeat. */
    claim(key: string, ttlMs: number): Promise<boolean>;
    /** Forget a claim after handling failed, so the platform's redelivery is accepted. */
    release(key: string): Promise<void>;
  };
  /** Record a security event (a replayed request) in the audit log as `platform.<action>`. */
  audit(action: string, details?: Record<string, unknown>): void;
  /** Read or write an adapter secret (bot tokens from OAuth installs), encrypted at rest. */
  secrets: {
    get(name: string): Promise<string | null>;
    set(name: string, value: string): Promise<void>;
    del(name: string): Promise<void>;
  };
}

export interface PlatformAdapter {
  readonly platform: string;
  start(ctx: AdapterContext): Promise<void>;
  stop(): Promise<void>;
  /**
   * Render one turn's events into the origin's thread: stream text by editing a
   * message within rate limits, show questions/approvals as buttons, post the
   * final answer. Resolves when the turn's final message is delivered.
   */
  deliver(
    origin: Origin,
    turn: { messageId: string; events: AsyncIterable<AgentEvent> },
  ): Promise<void>;
  /** Post a standalone notice (e.g. "your sandbox was reset") into the origin's thread. */
  notify(origin: Origin, text: string): Promise<void>;
}
