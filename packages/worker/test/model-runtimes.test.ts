import { join } from "node:path";
import type { TurnContext } from "@lobu/core";
import type { MockLlm } from "@lobu/testkit";
import { beforeEach, describe, expect, it } from "vitest";
import {
  type SessionModel,
  type SharedRegistration,
  SpareModelRuntimes,
} from "../src/model-runtimes.ts";
import { SandboxSession } from "../src/sandbox-session.ts";
import { virtualWorkspace } from "../src/virtual-workspace.ts";
import { agentFixtures, turnContext } from "./agent-fixtures.ts";
import { tempDir } from "./virtual/helpers.ts";

/**
 * A pool's pi model runtimes are reused: a session that lets go of pi's state
 * gives its runtime back, and the next session with the same model takes it.
 * Nothing of the last session may go with it (its key, its sandbox's name, its
 * trace context), two sessions never hold one runtime at once, and a runtime a
 * turn may still be calling the model with is never given to anyone.
 */

const registration = (id = "m"): SharedRegistration => ({
  providerId: "lobu-mock",
  baseUrl: "http://127.0.0.1:9/pool",
  api: "anthropic-messages",
  id,
  contextWindow: 200_000,
  maxTokens: 1000,
});

describe("SpareModelRuntimes", () => {
  it("hands a given-back runtime to the next session with the same model, emptied", async () => {
    const runtimes = new SpareModelRuntimes();
    try {
      const first = await runtimes.take(registration());
      first.headers["x-lobu-sandbox"] = "sb_alice";
      first.headers.traceparent = "00-aaaa-bbbb-01";
      await first.credentials.modify("lobu-mock", async () => ({
        type: "api_key",
        key: "lobu_alice_key",
      }));
      runtimes.give(first);
      const next = await runtimes.take(registration());
      expect(next).toBe(first);
      expect(next.headers).toEqual({});
      expect(await next.credentials.read("lobu-mock")).toBeUndefined();
    } finally {
      runtimes.dispose();
    }
  });

  it("gives a runtime to one session at a time, and only for its own model", async () => {
    const runtimes = new SpareModelRuntimes();
    try {
      const a = await runtimes.take(registration());
      runtimes.give(a);
      // Given twice (a session released, then unloaded): still one holder next.
      runtimes.give(a);
      const other = await runtimes.take(registration("another-model"));
      expect(other).not.toBe(a);
      expect(other.model.id).toBe("another-model");
      const [x, y] = await Promise.all([
        runtimes.take(registration()),
        runtimes.take(registration()),
      ]);
      expect(x).not.toBe(y);
      expect([x, y]).toContain(a);
      // A runtime this source never handed out is not taken in.
      const stranger = { ...a } as SessionModel;
      runtimes.give(stranger);
      expect(await runtimes.take(registration())).not.toBe(stranger);
    } finally {
      runtimes.dispose();
    }
  });

  it("keeps a bounded number of runtimes, none after it is disposed", async () => {
    const runtimes = new SpareModelRuntimes();
    const taken: SessionModel[] = [];
    for (let i = 0; i < 70; i++) taken.push(await runtimes.take(registration()));
    for (const m of taken) runtimes.give(m);
    const again = new Set<SessionModel>();
    expect(runtimes.free).toBe(64);
    for (let i = 0; i < 40; i++) again.add(await runtimes.take(registration()));
    const reused = [...again].filter((m) => taken.includes(m)).length;
    expect(reused).toBe(40);
    for (const m of again) runtimes.give(m);
    expect(runtimes.free).toBe(64);
    // Unused for long enough, they go.
    runtimes.expire(0);
    expect(runtimes.free).toBe(0);
    expect(taken).not.toContain(await runtimes.take(registration()));
    runtimes.dispose();
    runtimes.give(taken[0]!);
    const fresh = new SpareModelRuntimes();
    try {
      expect(taken).not.toContain(await fresh.take(registration()));
    } finally {
      fresh.dispose();
    }
  });

  it("keeps its count right when a key's deletion fails after an expiry or a dispose", async () => {
    /** Makes the runtime's key deletion fail when the test says so. */
    function failingDelete(model: SessionModel): () => void {
      let fail: (e: Error) => void = () => {};
      model.credentials.delete = () =>
        new Promise<void>((_, reject) => {
          fail = reject;
        });
      return () => fail(new Error("credential store unavailable"));
    }
    const runtimes = new SpareModelRuntimes();
    try {
      const a = await runtimes.take(registration());
      const failA = failingDelete(a);
      runtimes.give(a);
      runtimes.expire(60_000); // keeps it (given just now)
      failA();
      await new Promise((r) => setImmediate(r));
      expect(runtimes.free).toBe(0);
      expect(await runtimes.take(registration())).not.toBe(a);
      expect(runtimes.free).toBe(0);
      const b = await runtimes.take(registration());
      const failB = failingDelete(b);
      runtimes.give(b);
      runtimes.dispose();
      failB();
      await new Promise((r) => setImmediate(r));
      expect(runtimes.free).toBe(0);
    } finally {
      runtimes.dispose();
    }
  });
});

describe("a session's runtime", () => {
  const fixtures = agentFixtures();
  const shells = fixtures.shells;
  let llm: MockLlm;
  beforeEach(() => {
    llm = fixtures.llm;
  });
  const context = (): TurnContext =>
    turnContext({
      tools: ["read"],
      model: { ...turnContext().model, apiKey: "lobu_secret_first" },
    });

  /** A runtime source that records what it was given back. */
  function recording() {
    const inner = new SpareModelRuntimes();
    const given: SessionModel[] = [];
    return {
      given,
      take: (r: SharedRegistration) => inner.take(r),
      give: (m: SessionModel) => {
        given.push(m);
        inner.give(m);
      },
      dispose: () => inner.dispose(),
    };
  }

  async function session(sandboxId: string, source: ReturnType<typeof recording>) {
    const volumeDir = await tempDir("lobu-runtime-");
    return new SandboxSession({
      sandboxId,
      stateDir: join(volumeDir, ".lobu"),
      workspace: virtualWorkspace({ volumeDir, shellPool: shells }),
      gatewayUrl: llm.url,
      baseEnv: {},
      emit: () => {},
      callGateway: async () => ({ ok: true, output: "" }),
      modelRuntimes: source,
    });
  }

  it("is given back when the session lets go of pi's state, and serves the next one", async () => {
    const source = recording();
    try {
      const alice = await session("sb_alice", source);
      const ctx = context();
      expect((await alice.runTurn("t1", "m1", "hello", ctx)).status).toBe("done");
      expect(alice.release()).toBe(true);
      expect(source.given).toHaveLength(1);
      const bob = await session("sb_bob", source);
      const bobCtx = context();
      bobCtx.model.apiKey = "lobu_secret_bob";
      expect((await bob.runTurn("t2", "m2", "hi", bobCtx)).status).toBe("done");
      const [, second] = llm.requests;
      expect(second?.apiKey).toBe("lobu_secret_bob");
      expect(second?.headers["x-lobu-sandbox"]).toBe("sb_bob");
      bob.dispose();
      alice.dispose();
    } finally {
      source.dispose();
    }
  });

  it("is not given to anyone when the session is unloaded during a turn", async () => {
    const source = recording();
    try {
      const carol = await session("sb_carol", source);
      llm.when(
        (r) => r.lastUserText === "never ends",
        async () => new Promise(() => {}),
      );
      const running = carol.runTurn("t3", "m3", "never ends", context());
      await llm.waitForRequests(1, { timeoutMs: 30_000 });
      carol.dispose();
      expect(source.given).toHaveLength(0);
      await running.catch(() => undefined);
    } finally {
      source.dispose();
    }
  });
});
