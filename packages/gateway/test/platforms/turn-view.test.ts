import type { AgentEvent } from "@lobu/core";
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { RequestEvent } from "../../src/platforms/shared/requests.ts";
import type { LiveMemory, Part, ReplySurface } from "../../src/platforms/shared/turn-view.ts";
import { TurnView, TurnViews } from "../../src/platforms/shared/turn-view.ts";
import { AsyncQueue } from "../../src/runtime/async-queue.ts";

/**
 * The platform-independent turn rendering, against a chat that only records
 * what is on screen (the stand-in for Slack or Telegram).
 */

interface Shown {
  id: number;
  kind: "live" | "card";
  text: string;
  deleted?: boolean;
}

class ScreenSurface implements ReplySurface<number, number> {
  readonly screen: Shown[] = [];
  placeholder = false;

  async begin(): Promise<number | undefined> {
    if (!this.placeholder) return undefined;
    return this.#post("live", "Thinking…");
  }

  async render(handle: number | undefined, parts: Part[]): Promise<number> {
    const text = parts.map((p) => (p.kind === "aside" ? `[${p.text}]` : p.text)).join("|");
    if (handle === undefined) return this.#post("live", text);
    this.#find(handle).text = text;
    return handle;
  }

  async discard(handle: number): Promise<void> {
    this.#find(handle).deleted = true;
  }

  async postCard(event: RequestEvent): Promise<number> {
    return this.#post("card", `card:${event.requestId}`);
  }

  async closeCard(card: number, _event: RequestEvent, line: string): Promise<void> {
    this.#find(card).text += ` → ${line}`;
  }

  working(): void {}

  readonly keep = {
    ref: (handle: number): unknown => handle,
    revive: (ref: unknown): number | undefined => (typeof ref === "number" ? ref : undefined),
  };

  visible(): string[] {
    return this.screen.filter((s) => !s.deleted).map((s) => s.text);
  }

  #post(kind: Shown["kind"], text: string): number {
    const id = this.screen.length + 1;
    this.screen.push({ id, kind, text });
    return id;
  }

  #find(id: number): Shown {
    const found = this.screen.find((s) => s.id === id);
    if (!found) throw new Error(`no message ${id}`);
    return found;
  }
}

const log = pino({ level: "silent" });

async function play(
  views: TurnViews<number, number>,
  surface: ScreenSurface,
  events: AgentEvent[],
  messageId = "msg_1",
  memory?: LiveMemory,
): Promise<void> {
  const queue = new AsyncQueue<AgentEvent>();
  for (const e of events) queue.push(e);
  queue.end();
  await views.deliver(
    messageId,
    queue,
    () =>
      new TurnView(surface, {
        platform: "test",
        intervalMs: 10_000,
        log,
        ...(memory ? { memory } : {}),
      }),
  );
}

const started = (attempt = 1): AgentEvent => ({
  type: "turn_started",
  turnId: `msg_1.${attempt}`,
  messageId: "msg_1",
});
const question: AgentEvent = {
  type: "question",
  requestId: "rq_1",
  prompt: "Which?",
  options: [{ id: "o0", label: "A" }],
};

describe("TurnView", () => {
  it("ends with done's text in the live message (after the last tool line)", async () => {
    const surface = new ScreenSurface();
    await play(new TurnViews(), surface, [
      started(),
      { type: "text_delta", text: "Let me look. " },
      { type: "tool_call", callId: "c1", name: "bash", input: { command: "ls" } },
      { type: "text_delta", text: "Found it" },
      { type: "done", text: "Found it: 3 files." },
    ]);
    expect(surface.visible()).toEqual(["Let me look. |[🔧 `bash` `ls`]|Found it: 3 files."]);
  });

  it("puts text after a card into a new message below it, and shows how the card was answered", async () => {
    const surface = new ScreenSurface();
    await play(new TurnViews(), surface, [
      started(),
      { type: "text_delta", text: "Before." },
      { type: "tool_call", callId: "c1", name: "ask_user", input: {} },
      question,
      { type: "request_resolved", requestId: "rq_1", outcome: "o0", by: "test:ada" },
      { type: "text_delta", text: "After." },
      { type: "done", text: "After." },
    ]);
    expect(surface.visible()).toEqual([
      "Before.",
      "card:rq_1 → ✅ **A** (answered by ada)",
      "After.",
    ]);
  });

  it("replaces a placeholder that only preceded a card, and closes cards left open when the turn ends", async () => {
    const surface = new ScreenSurface();
    surface.placeholder = true;
    await play(new TurnViews(), surface, [
      started(),
      question,
      { type: "error", code: "agent_failed", message: "it broke" },
    ]);
    expect(surface.visible()).toEqual([
      "card:rq_1 → ⌛ _No longer waiting for an answer._",
      "⚠️ it broke",
    ]);
  });

  it("redraws the same message when the turn is retried, expiring the first attempt's cards", async () => {
    const surface = new ScreenSurface();
    const views = new TurnViews<number, number>();
    surface.placeholder = true;
    // Attempt 1 dies mid-way (no done): the stream just ends.
    await play(views, surface, [started(1), { type: "text_delta", text: "half an ans" }, question]);
    await play(views, surface, [
      started(2),
      { type: "notice", level: "warn", text: "picking the message up again" },
      { type: "done", text: "The whole answer." },
    ]);
    const live = surface.screen.filter((s) => s.kind === "live" && !s.deleted);
    expect(live.map((s) => s.text)).toEqual(["[⚠️ picking the message up again]|The whole answer."]);
    expect(surface.visible()).toContain("card:rq_1 → ⌛ _No longer waiting for an answer._");
    expect(views.hasOpenCard("rq_1")).toBe(false);
  });

  it("takes over the messages a dead gateway's attempt left, through the shared memory", async () => {
    const surface = new ScreenSurface();
    surface.placeholder = true;
    // The store both gateways share: what each save wrote, in order.
    const saves: unknown[][] = [];
    const memory: LiveMemory = {
      load: async () => saves.at(-1),
      save: async (refs) => {
        saves.push(refs);
      },
    };
    const question2: AgentEvent = { ...question, requestId: "rq_2" };
    // Gateway 1: a placeholder, text sealed above a card, more text above a second card; then it dies.
    await play(
      new TurnViews(),
      surface,
      [
        started(1),
        { type: "text_delta", text: "half an ans" },
        question,
        { type: "text_delta", text: "after the card" },
        question2,
      ],
      "msg_1",
      memory,
    );
    expect(saves.at(-1)).toEqual([1, 3]);
    // Gateway 2 (its own TurnViews, nothing in memory) re-runs the turn.
    await play(
      new TurnViews(),
      surface,
      [started(2), { type: "done", text: "The whole answer." }],
      "msg_1",
      memory,
    );
    const live = surface.screen.filter((s) => s.kind === "live" && !s.deleted);
    // One reply: the first message, edited; the second removed; no new message posted.
    expect(live).toEqual([{ id: 1, kind: "live", text: "The whole answer." }]);
    expect(surface.screen).toHaveLength(4);
    expect(saves.at(-1)).toEqual([1]);
  });

  it("posts anew when the kept reference is not one this surface understands", async () => {
    const surface = new ScreenSurface();
    const memory: LiveMemory = { load: async () => ["not-a-handle"], save: async () => {} };
    await play(
      new TurnViews(),
      surface,
      [started(), { type: "done", text: "Fresh." }],
      "m",
      memory,
    );
    expect(surface.visible()).toEqual(["Fresh."]);
  });

  it("posts the final text even when nothing streamed (a replayed answer)", async () => {
    const surface = new ScreenSurface();
    await play(new TurnViews(), surface, [started(), { type: "done", text: "From the journal." }]);
    expect(surface.visible()).toEqual(["From the journal."]);
  });
});

describe("TurnView: expired requests", () => {
  it("shows a request the gateway expired as no longer waiting", async () => {
    const surface = new ScreenSurface();
    await play(new TurnViews(), surface, [
      started(),
      question,
      { type: "request_resolved", requestId: "rq_1", outcome: "expired" },
      { type: "done", text: "Went on without an answer." },
    ]);
    expect(surface.visible()).toEqual([
      "card:rq_1 → ⌛ _No longer waiting for an answer._",
      "Went on without an answer.",
    ]);
  });
});
