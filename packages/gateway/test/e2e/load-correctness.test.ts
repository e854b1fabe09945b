import type { RecordedRequest } from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, until, type World } from "./sandboxes-kit.ts";

/**
 * Correctness under load on the virtual tier: many people send several
 * messages each, all accepted before most have run, so the durable queue, the
 * dispatcher and the pool are busy at once. Every message must end done (no
 * loss), run exactly one turn (no duplicate: its text reaches the model as a
 * new turn once), and appear exactly once, in order, in its conversation's
 * history. How fast it goes is for bench/throughput.bench.ts, never asserted here.
 */

const USERS = 24;
const PER_USER = 4;
const text = (u: number, m: number) => `load u${u} m${m}`;

/** The texts of the user messages a model request carries, in order. */
function userTexts(req: RecordedRequest): string[] {
  const messages = (req.body.messages ?? []) as { role: string; content: unknown }[];
  return messages
    .filter((m) => m.role === "user")
    .flatMap((m) =>
      typeof m.content === "string"
        ? [m.content]
        : Array.isArray(m.content)
          ? (m.content as { type: string; text?: string }[])
              .filter((c) => c.type === "text" && c.text !== undefined)
              .map((c) => c.text!)
          : [],
    );
}

describe("many conversations at once on the virtual tier", () => {
  let w: World;

  beforeAll(async () => {
    w = await startWorld({
      driver: "virtual",
      toml: `idle_timeout = "10m"\npool_size = 2\nmax_concurrent = 16\n`,
    });
  });
  afterAll(() => w?.close());

  it("runs every message exactly once, in order, with nothing lost", async () => {
    // Each person's messages are accepted one after another (their order is theirs);
    // people send at the same time. Nothing waits for a reply.
    const ids = await Promise.all(
      Array.from({ length: USERS }, async (_, u) => {
        const mine: string[] = [];
        for (let m = 0; m < PER_USER; m++) mine.push(await w.post(`load-${u}`, text(u, m)));
        return mine;
      }),
    );
    const all = ids.flat();
    expect(new Set(all).size).toBe(USERS * PER_USER);

    const statuses = await until(async () => {
      const now = await Promise.all(all.map((id) => w.message(id)));
      return now.every((s) => s.status !== "queued" && s.status !== "running")
        ? now.map((s) => s.status)
        : undefined;
    }, 250);
    expect(statuses.filter((s) => s !== "done")).toEqual([]);

    for (let u = 0; u < USERS; u++) {
      const mine = Array.from({ length: PER_USER }, (_, m) => text(u, m));
      // One new turn per message: exactly one model request starts with it as the latest text.
      for (const t of mine) {
        const turns = w.llm.requests.filter(
          (r) => r.lastUserText === t && r.toolResults.length === 0,
        );
        expect(turns, t).toHaveLength(1);
      }
      // The last turn sees the whole conversation: every message once, in the order sent.
      const last = w.llm.requests.find((r) => r.lastUserText === mine.at(-1))!;
      const seen = userTexts(last).filter((s) => s.startsWith(`load u${u} `));
      expect(seen).toEqual(mine);
    }
    // No request carries another person's messages.
    for (const r of w.llm.requests) {
      const owner = /^load u(\d+) /.exec(r.lastUserText)?.[1];
      if (owner === undefined) continue;
      const others = userTexts(r).filter(
        (s) => s.startsWith("load u") && !s.startsWith(`load u${owner} `),
      );
      expect(others).toEqual([]);
    }
    // A busy shared CI machine may take a while; the bound is generous on purpose.
  }, 240_000);
});
