import type { AgentEvent } from "@lobu/core";
import type { InboundFile, PlatformFiles } from "./files.ts";
import type { Origin } from "./origin.ts";
import type { PlatformFacts } from "./platform-facts.ts";

export type { InboundFile } from "./files.ts";

/** A user's message as every channel (platform adapters, the REST API) hands it to Inbound. */
export interface InboundMessage {
  origin: Origin;
  text: string;
  /** What was attached; fetched into the sandbox when the turn runs (domain/files.ts). */
  files?: InboundFile[];
  /** Platform id of this delivery; retried webhooks carry the same id and are delivered once. */
  eventId: string;
  /** Agent to route to when the adapter knows (a bot bound to one agent); otherwise the default. */
  agentId?: string;
  /** The platform's view of the sender and channel, for the access check; none: nothing to add (REST). */
  facts?: PlatformFacts;
  /**
   * A channel message that did not address the agent (no mention): taken only
   * where the channel's ambient mode says so, and refused silently otherwise.
   */
  ambient?: boolean;
  /** The schedule whose run this message is (schedules/scheduler.ts); none for people's messages. */
  scheduleId?: string;
}

/** A message taken in: queued (or found queued already, when a platform delivered it twice). */
export interface SubmitResult {
  /** The platform delivered this event before; `messageId` is the first delivery's message. */
  duplicate: boolean;
  messageId: string;
  /** Not taken, and nobody told: an ambient message the channel's rule or rate passes over, a bot's. */
  ignored?: boolean;
}

/** The name and picture a reply carries, where the platform lets one app post as several. */
export interface Persona {
  name?: string;
  iconUrl?: string;
}

/**
 * Where a turn's reply goes: the platform that renders it natively. The
 * runtime knows platforms only by this (platform adapters implement it).
 */
export interface ReplySurface {
  /**
   * Render one turn's events into the origin's thread: stream text by editing a
   * message within rate limits, show questions/approvals as buttons, post the
   * final answer. Resolves when the turn's final message is delivered.
   */
  deliver(
    origin: Origin,
    turn: { messageId: string; events: AsyncIterable<AgentEvent>; persona?: Persona },
  ): Promise<void>;
  /** Post a standalone notice (e.g. "your sandbox was reset") into the origin's thread. */
  notify(origin: Origin, text: string): Promise<void>;
  /** Files in and out, where the platform carries them. */
  readonly files?: PlatformFiles;
}
