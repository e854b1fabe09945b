import type { RequestAnswer } from "@lobu/core";
import type { Logger } from "pino";
import type { ConversationHistory } from "../../domain/history.ts";
import type { InboundMessage, ReplySurface, SubmitResult } from "../../domain/messages.ts";
import type { Origin } from "../../domain/origin.ts";
import type { PlatformRoutes } from "./routes.ts";

/**
 * Platform adapters are thin: they turn a platform's inbound events into
 * InboundMessage and render a turn's AgentEvent stream with the platform's native
 * UI. Routing, queueing, sandboxes and policy never live in an adapter.
 */

/** How long a platform delivery is remembered, so its redeliveries are handled once (as Inbound does). */
export const REDELIVERY_MEMORY_MS = 24 * 3_600_000;

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
  /**
   * Stop a running turn (a Stop button, a `stop` message, a reaction): the
   * turn of a message, or the one running in the conversation a message from
   * `origin` would go to. Only the turn's sender or an admin may stop it;
   * `clearQueue` also drops the messages waiting behind it. Never waits for
   * the conversation's queue. `text` says what happened (Markdown).
   */
  stop(request: {
    who: Pick<Origin, "platform" | "workspace" | "userId" | "userName">;
    target: { messageId: string } | { origin: Origin; agentId?: string };
    clearQueue: boolean;
  }): Promise<{ ok: boolean; text: string }>;
  /** Durably enqueue a message; resolves once it is stored (ack to the platform after). */
  submit(message: InboundMessage): Promise<SubmitResult>;
  /**
   * Whether the agent's access rules would refuse a message from `origin`
   * (nothing is stored): the reason (`external`, `guest`, ...) and what to
   * tell people, or undefined. Used when the agent is added to a channel.
   */
  accessRefusal(
    message: Pick<InboundMessage, "origin" | "facts" | "agentId">,
  ): Promise<{ reason: string; message: string } | undefined>;
  /**
   * A user clicked a button / answered a request shown by this adapter. Only the
   * person whose message started the turn may answer; `who` is the clicker.
   */
  answer(
    requestId: string,
    answer: RequestAnswer,
    who: Pick<Origin, "platform" | "workspace" | "userId" | "userName">,
  ): Promise<{ ok: boolean; reason?: string }>;
  /**
   * Bind the origin's channel to an agent (null: unbind it) for a person the
   * platform says administers the channel; the adapter checks that first.
   * A refusal (the agent may not be bound, lobu.toml binds the channel) is a
   * LobuError to explain to them.
   */
  bindChannel(origin: Origin, agentId: string | null): Promise<void>;
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
  /**
   * Append-only logs, namespaced per adapter: each bounded to its newest
   * `maxLen` entries and kept `ttlMs` after its last append (Telegram's log of
   * the group messages the bot saw).
   */
  logs: {
    append(name: string, data: string, opts: { maxLen: number; ttlMs: number }): Promise<string>;
    /** Newest entries first, strictly before entry id `before` when given. */
    newest(
      name: string,
      opts: { before?: string; limit: number },
    ): Promise<{ id: string; data: string }[]>;
  };
  /** Read or write an adapter secret (bot tokens from OAuth installs), encrypted at rest. */
  secrets: {
    get(name: string): Promise<string | null>;
    set(name: string, value: string): Promise<void>;
    del(name: string): Promise<void>;
  };
}

/**
 * A chat platform's adapter (docs/architecture.md, "Adding a platform"). The
 * parts it is made of, and the shared helpers each part uses:
 *
 * - receivers turn deliveries into calls: a webhook route on `ctx.routes`
 *   (a pure `webhook/verify.ts` first, then `handleOnce` from once.ts against
 *   replays and redeliveries, under the transport's AckPolicy from ack.ts), or
 *   a connection the adapter opens (Socket Mode, long polling);
 * - messages become an InboundMessage (`inboundMessage`, inbound.ts) stored
 *   with `submitInbound`, before the platform gets its answer;
 * - button clicks answer requests through `answerClick` (interactivity.ts);
 * - settings links go to the person alone (a private chat, an ephemeral),
 *   never into a conversation others read;
 * - `deliver` renders a turn with `deliverTurn` (deliver.ts) on the
 *   platform's ReplySurface (turn-view.ts), its API calls wrapped by
 *   `rateLimitedCalls` (pacing.ts);
 * - optionally, `files` (PlatformFiles, domain/files.ts): attachments
 *   downloaded with the platform's credentials and files posted into a
 *   thread (`platforms/<id>/files.ts`); the runtime checks it exists.
 */
export interface PlatformAdapter extends ReplySurface {
  /** The plugin's id: `[platforms.<id>]`, and the `platform` of its origins. */
  readonly platform: string;
  /**
   * Register routes, open connections, check credentials (failing with what
   * to fix). Called once, before the gateway listens: `ctx.publicUrl` is read
   * later, when a link is made.
   */
  start(ctx: AdapterContext): Promise<void>;
  /** Stop receiving, and wait for work in the Background (background.ts). */
  stop(): Promise<void>;
  /**
   * Earlier messages of its conversations (a thread's context, `channel_history`),
   * when the platform can give them; read only after `start`.
   */
  readonly history?: ConversationHistory;
}
