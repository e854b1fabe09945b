import type { AgentEvent } from "@lobu/core";
import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext } from "./adapter.ts";
import type { Background } from "./background.ts";
import { type CapabilityRequest, withoutPublicLinks } from "./private-links.ts";
import type { LiveMemory, ReplySurface, TurnViews } from "./turn-view.ts";

export interface DeliverTurnOptions<L, C> {
  views: TurnViews<L, C>;
  platform: string;
  log: Logger;
  background: Background;
  ctx: Pick<AdapterContext, "settingsLink" | "state">;
  /** Shortest time between two edits of the streaming reply in this conversation. */
  intervalMs: number;
  /**
   * Deliver a capability request's settings link to the person alone (an
   * ephemeral message, their private chat); used outside direct
   * conversations, where the card everyone sees carries no link.
   */
  sendLinkPrivately(request: CapabilityRequest): Promise<void>;
  /**
   * The turn's surface. `settingsUrl` is the person's settings link for a
   * capability card without one of its own: in a direct conversation a new
   * link, elsewhere none (it went privately). `messageId` is the turn's
   * message, which the streaming reply's Stop buttons name (stop.ts).
   */
  surface(settingsUrl: () => Promise<string | undefined>, messageId: string): ReplySurface<L, C>;
}

/**
 * Show one attempt of a turn in a conversation, the same way on every
 * platform: its events rendered by a TurnView on the platform's surface, and
 * settings links (single-use claim codes) kept out of what others can read.
 */
export function deliverTurn<L, C>(
  origin: Origin,
  turn: { messageId: string; events: AsyncIterable<AgentEvent> },
  opts: DeliverTurnOptions<L, C>,
): Promise<void> {
  const { log, background } = opts;
  const events = origin.isDirect
    ? turn.events
    : withoutPublicLinks(turn.events, (request) =>
        background.run(
          () => opts.sendLinkPrivately(request),
          "could not send the settings link for a request",
        ),
      );
  const settingsUrl = async (): Promise<string | undefined> => {
    if (!origin.isDirect) return undefined;
    try {
      return await opts.ctx.settingsLink(origin);
    } catch (err) {
      log.warn({ err }, "could not make a settings link: the card shows none");
      return undefined;
    }
  };
  return opts.views.show(
    { messageId: turn.messageId, events },
    {
      platform: opts.platform,
      intervalMs: opts.intervalMs,
      log,
      memory: liveMemory(opts.ctx.state, turn.messageId),
    },
    () => opts.surface(settingsUrl, turn.messageId),
  );
}

/**
 * How long a turn's reply messages are remembered: a message is re-run by
 * another gateway within its queue lease, and a re-run after a long outage
 * (the retry budget) still finds them.
 */
const LIVE_MEMORY_MS = 24 * 3_600_000;

/**
 * A turn's live message references in the adapter's state (the shared store),
 * so the gateway that re-runs a dead gateway's turn edits the same messages.
 * Kept after the turn ends: a gateway may die between the final edit and the
 * message's acknowledgement, and the re-run must still find them.
 */
export function liveMemory(state: AdapterContext["state"], messageId: string): LiveMemory {
  const key = `live:${messageId}`;
  return {
    async load() {
      const raw = await state.get(key);
      if (raw === null) return undefined;
      const refs = JSON.parse(raw) as unknown;
      return Array.isArray(refs) ? refs : undefined;
    },
    save: (refs) => state.set(key, JSON.stringify(refs), LIVE_MEMORY_MS),
  };
}
