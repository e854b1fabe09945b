import { type AgentEvent, visibleText } from "@lobu/core";
import type { Logger } from "pino";
import { clip } from "./markdown.ts";
import { Coalescer, MessageTooLong, RetryLater, withRetryLater } from "./pacing.ts";
import {
  displayName,
  EXPIRED_MARKDOWN,
  isRequestEvent,
  type RequestEvent,
  resolvedMarkdown,
} from "./requests.ts";

/**
 * How one turn looks in a chat, independent of the platform: a live message
 * that streams the reply (text and compact tool lines), request cards with
 * buttons, and the final answer. Text after a card goes to a new live message
 * below it, so the thread reads in order. A new attempt of the same turn
 * (turn_started again) redraws the same live message — on another gateway
 * too: the live messages' references are kept in the store (`LiveMemory`) as
 * they change, so a survivor re-running a dead gateway's turn takes over the
 * message that was cut instead of posting a second reply.
 */

/** A piece of the live message: reply text, or a compact line (tool call, notice). Both Markdown. */
export type Part = { kind: "text"; text: string } | { kind: "aside"; text: string };

export interface ReplySurface<L, C> {
  /** The turn starts: show that the agent works; may post a placeholder that becomes the live message. */
  begin(): Promise<L | undefined>;
  /** Post (`handle` undefined) or update the live message; `final` when no more changes follow. */
  render(handle: L | undefined, parts: Part[], final: boolean): Promise<L>;
  /** Remove a live message that never got content (a placeholder before a card). */
  discard(handle: L): Promise<void>;
  postCard(event: RequestEvent): Promise<C>;
  /** Replace the card's buttons with `line` (Markdown). */
  closeCard(card: C, event: RequestEvent, line: string): Promise<void>;
  /** Working (typing hint on) or waiting for a person / finished (off). */
  working(on: boolean): void;
  /**
   * A live message as plain JSON data (`ref`) and back (`revive`; undefined
   * when the data is not one), so another gateway can edit it. Without it a
   * surface's messages are not taken over.
   */
  keep?: { ref(handle: L): unknown; revive(ref: unknown): L | undefined };
}

/**
 * `keep` for a surface whose live handle is already plain data: message ids
 * under `idsKey` and what each shows (`shown`, for comparing before an edit).
 */
export function keepPlainLive<L extends { shown: string[] }>(
  idsKey: keyof L & string,
  idType: "string" | "number",
): NonNullable<ReplySurface<L, unknown>["keep"]> {
  return {
    ref: (handle) => ({ [idsKey]: handle[idsKey], shown: handle.shown }),
    revive(ref) {
      const r = ref as Record<string, unknown> | null;
      const ids = r?.[idsKey];
      const shown = r?.shown;
      if (!Array.isArray(ids) || !ids.every((i) => typeof i === idType)) return undefined;
      if (!Array.isArray(shown) || !shown.every((t) => typeof t === "string")) return undefined;
      if (ids.length !== shown.length) return undefined;
      return { [idsKey]: ids, shown } as unknown as L;
    },
  };
}

/** Where a turn's live message references are kept for whichever gateway renders the turn next. */
export interface LiveMemory {
  load(): Promise<unknown[] | undefined>;
  save(refs: unknown[]): Promise<void>;
}

export interface TurnViewOptions {
  platform: string;
  intervalMs: number;
  log: Logger;
  /** The turn's live messages, kept across gateways (needs the surface's `keep`). */
  memory?: LiveMemory;
}

export class TurnView<L, C> {
  readonly #surface: ReplySurface<L, C>;
  readonly #opts: TurnViewOptions;
  readonly #coalescer: Coalescer;
  readonly #cards = new Map<string, { card: C; event: RequestEvent; closed: boolean }>();
  #parts: Part[] = [];
  #live: L | undefined;
  /** Every live message of the current attempt, oldest first (a retry redraws the first). */
  #lives: L[] = [];
  /** The live message holds only a placeholder or a previous attempt's output. */
  #liveStale = false;
  #began = false;
  #finished = false;
  /** The references last saved to the memory (JSON), so unchanged ones are not written again. */
  #saved = "[]";

  constructor(surface: ReplySurface<L, C>, opts: TurnViewOptions) {
    this.#surface = surface;
    this.#opts = opts;
    this.#coalescer = new Coalescer(
      opts.intervalMs,
      () => this.#render(false),
      (err) => opts.log.warn({ err }, "could not update the streaming reply"),
    );
  }

  get finished(): boolean {
    return this.#finished;
  }

  /** Whether this view shows an open card for the request (it will close it on request_resolved). */
  hasOpenCard(requestId: string): boolean {
    const entry = this.#cards.get(requestId);
    return entry !== undefined && !entry.closed;
  }

  async handle(event: AgentEvent): Promise<void> {
    if (this.#finished) return;
    switch (event.type) {
      case "turn_started":
        await this.#start();
        return;
      case "text_delta": {
        const last = this.#parts.at(-1);
        if (last?.kind === "text") last.text += event.text;
        else this.#parts.push({ kind: "text", text: event.text });
        this.#coalescer.changed();
        return;
      }
      case "tool_call":
        // ask_user shows up as its question card.
        if (event.name !== "ask_user") this.#aside(toolLine(event.name, event.input));
        return;
      case "notice":
        this.#aside(`${event.level === "warn" ? "⚠️" : "ℹ️"} ${event.text}`);
        return;
      case "request_resolved":
        await this.#resolved(
          event.requestId,
          event.outcome,
          displayName(event.by, this.#opts.platform),
        );
        return;
      case "error":
        // A stopped turn keeps what it wrote, and says who stopped it.
        await this.#finish(
          undefined,
          `${event.code === "turn_stopped" ? "⏹️" : "⚠️"} ${event.message}`,
        );
        return;
      case "done":
        await this.#finish(event.text);
        return;
      default:
        if (isRequestEvent(event)) await this.#card(event);
    }
  }

  /** The attempt's event stream ended (without done if the turn will be retried). */
  async detach(): Promise<void> {
    await this.#coalescer.pause();
    this.#surface.working(false);
  }

  /** Post or update the live message with the current parts. */
  async #render(final: boolean): Promise<void> {
    const before = this.#live;
    const parts = this.#parts;
    const after = await (final
      ? withRetryLater(() => this.#surface.render(before, parts, true))
      : this.#surface.render(before, parts, false));
    // Handles may be replaced by newer ones (a reply that grew into a second message).
    if (before === undefined) this.#lives.push(after);
    else this.#lives = this.#lives.map((l) => (l === before ? after : l));
    this.#live = after;
    this.#liveStale = false;
    await this.#remember();
  }

  /** The messages another gateway's earlier attempt of this turn left (none without memory). */
  async #recall(): Promise<L[]> {
    const { memory } = this.#opts;
    const keep = this.#surface.keep;
    if (!memory || !keep) return [];
    try {
      const refs = (await memory.load()) ?? [];
      this.#saved = JSON.stringify(refs);
      return refs.map((r) => keep.revive(r)).filter((l): l is L => l !== undefined);
    } catch (err) {
      this.#opts.log.warn({ err }, "could not read the reply messages of an earlier attempt");
      return [];
    }
  }

  /**
   * Save the live messages' references when they changed (awaited: a message
   * posted is known to the store before the turn goes on). Best effort: the
   * reply does not fail because the store did.
   */
  async #remember(): Promise<void> {
    const { memory } = this.#opts;
    const keep = this.#surface.keep;
    if (!memory || !keep) return;
    const refs = this.#lives.map((l) => keep.ref(l));
    const json = JSON.stringify(refs);
    if (json === this.#saved) return;
    try {
      await memory.save(refs);
      this.#saved = json;
    } catch (err) {
      this.#opts.log.warn({ err }, "could not keep the reply messages' references");
    }
  }

  /**
   * A new attempt: its output replaces the previous attempt's (this gateway's
   * or a dead one's), starting in its first message; the others are removed.
   */
  async #restart(lives: L[]): Promise<void> {
    const [first, ...rest] = lives;
    for (const handle of rest) {
      await this.#surface
        .discard(handle)
        .catch((err) =>
          this.#opts.log.debug({ err }, "could not remove a message of the previous attempt"),
        );
    }
    this.#lives = first === undefined ? [] : [first];
    this.#live = first;
    this.#liveStale = first !== undefined;
    this.#parts = [];
    await this.#remember();
  }

  async #start(): Promise<void> {
    if (this.#began) {
      // A new attempt: its output replaces the previous attempt's, starting in its first message.
      await this.#coalescer.pause();
      await this.#expireOpenCards();
      await this.#restart(this.#lives);
      this.#coalescer.resume();
      this.#surface.working(true);
      return;
    }
    this.#began = true;
    this.#surface.working(true);
    // A gateway that died mid-turn left its messages: this attempt takes them over.
    const earlier = await this.#recall();
    if (earlier.length > 0) {
      await this.#restart(earlier);
      return;
    }
    try {
      this.#live = await this.#surface.begin();
      this.#liveStale = this.#live !== undefined;
      if (this.#live !== undefined) {
        this.#lives.push(this.#live);
        this.#coalescer.touched();
        await this.#remember();
      }
    } catch (err) {
      this.#opts.log.warn({ err }, "could not show that the agent is working");
    }
  }

  #aside(text: string): void {
    this.#parts.push({ kind: "aside", text });
    this.#coalescer.changed();
  }

  /** Finish the live message as it is; what follows goes below the next card. */
  async #seal(): Promise<void> {
    await this.#coalescer.pause();
    try {
      if (this.#parts.length > 0) {
        await this.#render(true);
      } else if (this.#live !== undefined && this.#liveStale) {
        await this.#surface.discard(this.#live);
        this.#lives = this.#lives.filter((l) => l !== this.#live);
        await this.#remember();
      }
    } catch (err) {
      this.#opts.log.warn({ err }, "could not finish the reply before a card");
    }
    this.#parts = [];
    this.#live = undefined;
    this.#liveStale = false;
    this.#coalescer.resume();
  }

  async #card(event: RequestEvent): Promise<void> {
    await this.#seal();
    this.#surface.working(false);
    try {
      const card = await withRetryLater(() => this.#surface.postCard(event));
      this.#cards.set(event.requestId, { card, event, closed: false });
    } catch (err) {
      this.#opts.log.error({ err, requestId: event.requestId }, "could not post the request card");
    }
  }

  async #resolved(requestId: string, outcome: string, by: string | undefined): Promise<void> {
    const entry = this.#cards.get(requestId);
    this.#surface.working(true);
    if (!entry || entry.closed) return;
    entry.closed = true;
    try {
      await withRetryLater(() =>
        this.#surface.closeCard(
          entry.card,
          entry.event,
          resolvedMarkdown(entry.event, outcome, by),
        ),
      );
    } catch (err) {
      this.#opts.log.warn({ err, requestId }, "could not update the answered card");
    }
  }

  async #expireOpenCards(): Promise<void> {
    for (const [requestId, entry] of this.#cards) {
      if (entry.closed) continue;
      entry.closed = true;
      try {
        await this.#surface.closeCard(entry.card, entry.event, EXPIRED_MARKDOWN);
      } catch (err) {
        this.#opts.log.warn({ err, requestId }, "could not close an expired card");
      }
    }
  }

  async #finish(text: string | undefined, error?: string): Promise<void> {
    this.#finished = true;
    await this.#coalescer.pause();
    this.#surface.working(false);
    const parts = this.#parts;
    if (text) {
      // done carries the last assistant message: the text after the last tool line.
      const last = parts.at(-1);
      if (last?.kind === "text") last.text = text;
      else parts.push({ kind: "text", text });
    }
    if (error) parts.push({ kind: "text", text: error });
    if (parts.length === 0 && this.#live !== undefined)
      parts.push({ kind: "text", text: "✅ Done." });
    try {
      if (parts.length > 0) await this.#deliverFinal(parts);
    } catch (err) {
      this.#opts.log.error({ err }, "could not deliver the final reply");
    }
    await this.#expireOpenCards();
  }

  /**
   * The final reply must arrive (pacing.ts, the delivery policy): limits and
   * outages are waited out; a reply the platform finds too long is sent in
   * parts; a live message that cannot be edited any more (deleted, too old)
   * is replaced by a new one.
   */
  async #deliverFinal(parts: Part[]): Promise<void> {
    try {
      await this.#render(true);
      return;
    } catch (err) {
      if (err instanceof MessageTooLong) {
        const text = parts.map((p) => p.text).join("\n\n");
        await this.#postInParts(text, Math.min(SPLIT_START, Math.ceil(text.length / 2)), true);
        return;
      }
      if (this.#live === undefined || err instanceof RetryLater) throw err;
      this.#opts.log.warn({ err }, "could not edit the streaming reply; posting the reply anew");
    }
    this.#live = undefined;
    await this.#render(true);
  }

  /**
   * Post `text` in messages of at most `limit` characters (the first replaces
   * the live message when `first`); a part still too long is split again, in
   * halves, down to SPLIT_MIN.
   */
  async #postInParts(text: string, limit: number, first: boolean): Promise<void> {
    let replace = first;
    for (const piece of splitText(text, limit)) {
      const handle = replace ? this.#live : undefined;
      replace = false;
      try {
        const posted = await withRetryLater(() =>
          this.#surface.render(handle, [{ kind: "text", text: piece }], true),
        );
        if (handle === undefined) this.#lives.push(posted);
        else this.#lives = this.#lives.map((l) => (l === handle ? posted : l));
        this.#live = posted;
        await this.#remember();
      } catch (err) {
        if (!(err instanceof MessageTooLong) || limit <= SPLIT_MIN) throw err;
        await this.#postInParts(piece, Math.floor(limit / 2), handle !== undefined);
      }
    }
  }
}

/** The first size a reply too long for its platform is split into, and the smallest. */
const SPLIT_START = 4000;
const SPLIT_MIN = 200;

/**
 * `text` in pieces of at most `limit` characters, cut at a paragraph, else a
 * line, else a space, else anywhere.
 */
export function splitText(text: string, limit: number): string[] {
  const pieces: string[] = [];
  let rest = text.trim();
  while (rest.length > limit) {
    const window = rest.slice(0, limit + 1);
    const cut = [
      window.lastIndexOf("\n\n"),
      window.lastIndexOf("\n"),
      window.lastIndexOf(" "),
    ].find((i) => i > limit / 2);
    const at = cut ?? limit;
    pieces.push(rest.slice(0, at).trimEnd());
    rest = rest.slice(at).trimStart();
  }
  if (rest) pieces.push(rest);
  return pieces;
}

/**
 * A compact, one-line description of a tool call (Markdown): a progress line,
 * visibly cut, with hidden characters shown (approvals show the whole input).
 */
export function toolLine(name: string, input: unknown): string {
  let detail = "";
  if (input && typeof input === "object") {
    const obj = input as Record<string, unknown>;
    const main = obj.command ?? obj.path ?? obj.pattern ?? obj.url ?? obj.query;
    detail = typeof main === "string" ? main : JSON.stringify(input);
  } else if (input !== undefined) {
    detail = String(input);
  }
  const oneLine = clip(visibleText(detail.trim()).replace(/\n+/g, " ↵ "), 120).replace(/`/g, "'");
  return oneLine ? `🔧 \`${name}\` ${"`"}${oneLine}${"`"}` : `🔧 \`${name}\``;
}

/**
 * The turns an adapter is rendering, by message id, so a retried attempt of a
 * turn redraws the same messages, and button clicks know whether a live view
 * will update the card.
 */
export class TurnViews<L, C> {
  readonly #views = new Map<string, { view: TurnView<L, C>; timer: NodeJS.Timeout }>();
  readonly #ttlMs: number;

  constructor(ttlMs = 3_600_000) {
    this.#ttlMs = ttlMs;
  }

  /** Render one attempt's events; resolves once its final message is delivered (or the stream ends). */
  async deliver(
    messageId: string,
    events: AsyncIterable<AgentEvent>,
    create: () => TurnView<L, C>,
  ): Promise<void> {
    const existing = this.#views.get(messageId);
    if (existing) clearTimeout(existing.timer);
    const view = existing?.view ?? create();
    const timer = setTimeout(() => this.#views.delete(messageId), this.#ttlMs);
    timer.unref();
    this.#views.set(messageId, { view, timer });
    try {
      for await (const event of events) {
        await view.handle(event);
        if (view.finished) break;
      }
    } finally {
      await view.detach();
      if (view.finished) {
        clearTimeout(timer);
        this.#views.delete(messageId);
      }
    }
  }

  /** deliver() with a new view on `surface()`; its log lines name the message. */
  show(
    turn: { messageId: string; events: AsyncIterable<AgentEvent> },
    opts: TurnViewOptions,
    surface: () => ReplySurface<L, C>,
  ): Promise<void> {
    const log = opts.log.child({ messageId: turn.messageId });
    return this.deliver(
      turn.messageId,
      turn.events,
      () => new TurnView(surface(), { ...opts, log }),
    );
  }

  hasOpenCard(requestId: string): boolean {
    for (const { view } of this.#views.values()) if (view.hasOpenCard(requestId)) return true;
    return false;
  }

  clear(): void {
    for (const { timer } of this.#views.values()) clearTimeout(timer);
    this.#views.clear();
  }
}
