import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TurnContext, WorkerToGateway } from "@lobu/core";
import { type MockLlm, stillReachable } from "@lobu/testkit";
import { beforeEach, describe, expect, it } from "vitest";
import { SessionHost, type SessionHostOptions } from "../src/host.ts";
import { virtualWorkspace } from "../src/virtual-workspace.ts";
import { agentFixtures, turnContext } from "./agent-fixtures.ts";
import { tempDir } from "./virtual/helpers.ts";

/**
 * The worker's pool mode: many sandboxes in one SessionHost, each a pi session
 * over its own virtual workspace, unloaded when idle and reloaded from disk.
 * The model is the mock LLM over HTTP; nothing of the worker is faked.
 */

const fixtures = agentFixtures();
const shells = fixtures.shells;
let llm: MockLlm;
beforeEach(() => {
  llm = fixtures.llm;
});

const context = (): TurnContext => turnContext({ env: { GREETING: "hi-from-env" } });

/** The model's answer to `text` waits until the returned function is called, then is "held". */
function holdTheModelOn(text: string): () => void {
  let finish = () => {};
  const held = new Promise<void>((r) => {
    finish = r;
  });
  llm.when(
    (r) => r.lastUserText === text,
    async () => {
      await held;
      return { text: "held" };
    },
  );
  return () => finish();
}

async function pool(release: Pick<SessionHostOptions, "heldStates" | "holdMaxMs"> = {}) {
  const root = await tempDir("lobu-pool-");
  const sent: WorkerToGateway[] = [];
  const waiters: Array<() => void> = [];
  const host = new SessionHost({
    ...release,
    mode: "pool",
    volumeOf: (id) => join(root, id),
    workspaceFor: (_id, volumeDir) => virtualWorkspace({ volumeDir, shellPool: shells }),
    gatewayUrl: llm.url,
    baseEnv: {},
    send: (msg) => {
      sent.push(msg);
      for (const w of waiters.splice(0)) w();
    },
  });
  let n = 0;
  const turnIds: string[] = [];
  /** Each turn's context, weakly: what the pool still holds of it. */
  const contexts: WeakRef<TurnContext>[] = [];
  const turn = async (
    sandboxId: string,
    text: string,
    opts: { apiKey?: string; traceparent?: string } = {},
  ) => {
    const turnId = `t${++n}`;
    turnIds.push(turnId);
    mkdirSync(join(root, sandboxId), { recursive: true });
    const ctx = context();
    if (opts.apiKey) ctx.model.apiKey = opts.apiKey;
    contexts.push(new WeakRef(ctx));
    host.handle({
      t: "turn",
      sandboxId,
      turnId,
      messageId: `m-${turnId}`,
      text,
      context: ctx,
      ...(opts.traceparent ? { traceparent: opts.traceparent } : {}),
    });
    for (;;) {
      const end = sent.find((m) => m.t === "turn_end" && m.turnId === turnId);
      if (end) return end as Extract<WorkerToGateway, { t: "turn_end" }>;
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  return { root, host, sent, turn, turnIds, contexts };
}

describe("pool mode", () => {
  it("runs each sandbox's tools in its own virtual workspace, persisted in its volume", async () => {
    const p = await pool();
    llm.when(
      (r) => r.lastUserText === "note it",
      { toolCalls: [{ name: "bash", input: { command: "echo $GREETING > note.txt; pwd; ls /" } }] },
      { text: "noted" },
    );
    const end = await p.turn("sb_a", "note it");
    expect(end).toMatchObject({ status: "done", text: "noted" });
    expect(readFileSync(join(p.root, "sb_a", "note.txt"), "utf8")).toBe("hi-from-env\n");
    const result = llm.requests.at(-1)!.toolResults[0]!.content;
    expect(result).toMatch(/^\/workspace\n/);
    expect(result).not.toContain(p.root);
    // The sandbox is named on every model call by the pool's code.
    expect(llm.requests.every((r) => r.headers["x-lobu-sandbox"] === "sb_a")).toBe(true);
    expect(p.host.size).toBe(1);
  });

  it("sends each turn's own key and trace context on a session kept between turns", async () => {
    const p = await pool();
    const trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    expect((await p.turn("sb_k", "one", { apiKey: "lobu_key_turn_1" })).status).toBe("done");
    expect(
      (await p.turn("sb_k", "two", { apiKey: "lobu_key_turn_2", traceparent: trace })).status,
    ).toBe("done");
    expect((await p.turn("sb_k", "three", { apiKey: "lobu_key_turn_3" })).status).toBe("done");
    expect(llm.requests.map((r) => r.apiKey)).toEqual([
      "lobu_key_turn_1",
      "lobu_key_turn_2",
      "lobu_key_turn_3",
    ]);
    expect(llm.requests.map((r) => r.headers.traceparent)).toEqual([undefined, trace, undefined]);
    expect(llm.requests.every((r) => r.headers["x-lobu-sandbox"] === "sb_k")).toBe(true);
    // One session all along: the history of the first turns reaches the third.
    expect(llm.requests.at(-1)!.lastUserText).toBe("three");
    expect(JSON.stringify(llm.requests.at(-1)!.body.messages)).toContain("two");
  });

  it("unloads idle sessions, says so, and reloads the conversation from disk", async () => {
    const p = await pool();
    expect((await p.turn("sb_b", "remember kiwi")).status).toBe("done");
    expect(p.host.unloadIdle(0)).toBe(1);
    expect(p.sent.at(-1)).toEqual({ t: "closed", sandboxId: "sb_b" });
    expect(p.host.size).toBe(0);
    expect((await p.turn("sb_b", "what fruit?")).status).toBe("done");
    expect(JSON.stringify(llm.requests.at(-1)!.body.messages)).toContain("remember kiwi");
  });

  it("lets go of an idle session's pi state and rebuilds it from disk on its next turn", async () => {
    const p = await pool();
    expect((await p.turn("sb_r", "remember plum", { apiKey: "lobu_key_r1" })).status).toBe("done");
    expect(p.host.releaseIdle(0)).toBe(1);
    // Still loaded: the gateway is not told anything, the sandbox keeps running.
    expect(p.host.size).toBe(1);
    expect(p.sent.some((m) => m.t === "closed")).toBe(false);
    expect(p.host.releaseIdle(0)).toBe(0);
    expect((await p.turn("sb_r", "which fruit?", { apiKey: "lobu_key_r2" })).status).toBe("done");
    const last = llm.requests.at(-1)!;
    expect(JSON.stringify(last.body.messages)).toContain("remember plum");
    expect(last.apiKey).toBe("lobu_key_r2");
    expect(last.headers["x-lobu-sandbox"]).toBe("sb_r");
  });

  it("keeps nothing of a released session's last turn context (prompt, tool specs, keys)", async () => {
    const p = await pool();
    expect((await p.turn("sb_m", "one")).status).toBe("done");
    expect((await p.turn("sb_m", "two")).status).toBe("done");
    expect(await stillReachable(p.contexts)).toHaveLength(1);
    expect(p.host.releaseIdle(0)).toBe(1);
    expect(await stillReachable(p.contexts)).toEqual([]);
    // The next turn brings its own and runs as before.
    expect((await p.turn("sb_m", "three")).status).toBe("done");
    expect(JSON.stringify(llm.requests.at(-1)!.body.messages)).toContain("two");
  });

  it("keeps the pi state of the most recently active sessions, up to its budget and for a while", async () => {
    // releaseIdleMs 0 (the sweep is called by hand here): only the budget and holdMaxMs decide.
    const p = await pool({ heldStates: 2, holdMaxMs: 60_000 });
    for (const sb of ["sb_1", "sb_2", "sb_3"]) expect((await p.turn(sb, sb)).status).toBe("done");
    const now = Date.now();
    // Three held, two allowed: the least recently active lets go.
    expect(p.host.releaseOverBudget(now)).toBe(1);
    expect(p.host.releaseOverBudget(now)).toBe(0);
    const holding = () => ["sb_1", "sb_2", "sb_3"].filter((sb) => p.host.holdsState(sb));
    expect(holding()).toEqual(["sb_2", "sb_3"]);
    // Its next turn rebuilds it from disk; then sb_2 is the oldest and lets go.
    expect((await p.turn("sb_1", "again")).status).toBe("done");
    expect(JSON.stringify(llm.requests.at(-1)!.body.messages)).toContain("sb_1");
    expect(p.host.releaseOverBudget(Date.now())).toBe(1);
    expect(holding()).toEqual(["sb_1", "sb_3"]);
    // Within the budget, idle past holdMaxMs: every one lets go.
    expect(p.host.releaseOverBudget(Date.now() + 60_000)).toBe(2);
    expect(holding()).toEqual([]);
  });

  it("counts a running turn's session in its budget but never lets go of it", async () => {
    const p = await pool({ heldStates: 0, holdMaxMs: 60_000 });
    const finish = holdTheModelOn("hold on");
    expect((await p.turn("sb_i", "idle one")).status).toBe("done");
    const running = p.turn("sb_b", "hold on");
    await llm.waitForRequests(2, { timeoutMs: 30_000 });
    expect(p.host.releaseOverBudget(Date.now() + 120_000)).toBe(1);
    expect(p.host.holdsState("sb_b")).toBe(true);
    finish();
    expect(await running).toMatchObject({ status: "done", text: "held" });
  });

  it("never lets go of a session while its turn runs", async () => {
    const p = await pool();
    const finish = holdTheModelOn("hold on");
    const running = p.turn("sb_h", "hold on");
    await llm.waitForRequests(1, { timeoutMs: 30_000 });
    expect(p.host.releaseIdle(0)).toBe(0);
    finish();
    expect(await running).toMatchObject({ status: "done", text: "held" });
  });

  it("gives every rebuilt session its own model runtime: keys and names never cross", async () => {
    const p = await pool();
    // Sessions built at the same time take runtimes made ahead (or their own); each must
    // carry only its own key, however their builds and requests interleave.
    for (let round = 1; round <= 3; round++) {
      const ends = await Promise.all(
        ["sb_x", "sb_y", "sb_z"].map((sb) =>
          p.turn(sb, `${sb} round ${round}`, { apiKey: `lobu_${sb}_${round}` }),
        ),
      );
      expect(ends.map((e) => e.status)).toEqual(["done", "done", "done"]);
      p.host.releaseIdle(0);
    }
    expect(llm.requests).toHaveLength(9);
    for (const r of llm.requests) {
      const [sb, , round] = r.lastUserText.split(" ");
      expect(r.apiKey).toBe(`lobu_${sb}_${round}`);
      expect(r.headers["x-lobu-sandbox"]).toBe(sb);
    }
  });

  it("closes one sandbox on request and keeps the others", async () => {
    const p = await pool();
    await p.turn("sb_c", "one");
    await p.turn("sb_d", "two");
    p.host.handle({ t: "close", sandboxId: "sb_c" });
    expect(p.sent.at(-1)).toEqual({ t: "closed", sandboxId: "sb_c" });
    expect(p.host.size).toBe(1);
    expect((await p.turn("sb_d", "three")).status).toBe("done");
  });

  it("cancels only the turn a cancel names", async () => {
    const p = await pool();
    let release = () => {};
    const opened = new Promise<void>((r) => {
      release = r;
    });
    const slow = async () => {
      await opened;
      return { text: "finished" };
    };
    llm.when((r) => r.lastUserText === "slow", slow);
    const first = p.turn("sb_f", "slow");
    await llm.waitForRequests(1, { timeoutMs: 30_000 });
    // A late cancel of an earlier turn does not touch the one running now.
    p.host.handle({ t: "cancel", sandboxId: "sb_f", turnId: "t-earlier" });
    release();
    expect(await first).toMatchObject({ status: "done", text: "finished" });

    llm.when(
      (r) => r.lastUserText === "never ends",
      async () => new Promise(() => {}),
    );
    const second = p.turn("sb_f", "never ends");
    await llm.waitForRequests(2, { timeoutMs: 30_000 });
    p.host.handle({ t: "cancel", sandboxId: "sb_f", turnId: p.turnIds.at(-1)! });
    expect(await second).toMatchObject({ status: "cancelled" });
  });

  it("ends a turn cancelled while it was still being set up, before any model call", async () => {
    const p = await pool();
    const ended = p.turn("sb_g", "cancelled early");
    // The session is still being built (async): the turn is not running yet.
    p.host.handle({ t: "cancel", sandboxId: "sb_g", turnId: p.turnIds.at(-1)! });
    expect(await ended).toMatchObject({ status: "cancelled" });
    expect(llm.requests).toEqual([]);
    // The next turn runs as usual.
    llm.when((r) => r.lastUserText === "after", { text: "fine" });
    expect(await p.turn("sb_g", "after")).toMatchObject({ status: "done", text: "fine" });
  });

  it("reports a sandbox whose saved state is unusable as state_corrupt", async () => {
    const p = await pool();
    mkdirSync(join(p.root, "sb_e"), { recursive: true });
    writeFileSync(join(p.root, "sb_e", ".lobu"), "not a directory");
    const end = await p.turn("sb_e", "hello");
    expect(end).toMatchObject({ status: "error", error: { code: "state_corrupt" } });
    expect(llm.requests).toEqual([]);
  });

  it("refuses sandbox ids that could leave the volumes root", async () => {
    const p = await pool();
    for (const sandboxId of ["../escape", "a/b", ".hidden", ""]) {
      p.host.handle({ t: "close", sandboxId });
      expect(p.sent.at(-1)).toMatchObject({ t: "log", level: "error" });
    }
    expect(existsSync(join(p.root, "..", "escape"))).toBe(false);
  });
});
