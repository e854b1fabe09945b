import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ActiveTurns, type RunningTurn } from "../../src/runtime/active-turns.ts";
import { turnGatedPlaceholders } from "../../src/runtime/turn-gate.ts";
import { PlaceholderRegistry } from "../../src/secrets/placeholders.ts";
import type { SecretRef } from "../../src/secrets/store.ts";
import { createStore } from "../../src/store/index.ts";
import type { Store } from "../../src/store/port.ts";

/**
 * "A person's credentials act only on that person's own turns; outside a running
 * turn a sandbox's placeholders are inert": the placeholder lookup the proxy and
 * the relay see, against the gateway's real placeholder registry.
 */

let dir: string;
let store: Store;
let registry: PlaceholderRegistry;
let turns: ActiveTurns;
const SB = "sb_channel";
const agentSecret: SecretRef = { name: "github", scope: { kind: "agent", agentId: "helper" } };
const aliceSecret: SecretRef = {
  name: "github",
  scope: { kind: "user", agentId: "helper", userKey: "slack:T1:UALICE" },
};

function turnOf(user: string, n: number): RunningTurn {
  return {
    turnId: `msg_${user}.${n}`,
    messageId: `msg_${user}`,
    agentId: "helper",
    userKey: `slack:T1:${user}`,
    origin: { platform: "slack", workspace: "T1", channelId: "C1", userId: user, isDirect: false },
    model: { provider: "anthropic", id: "claude-test" },
  };
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "lobu-gate-"));
  store = await createStore({ driver: "sqlite", path: join(dir, "lobu.db") });
  registry = new PlaceholderRegistry(store.kv);
  turns = new ActiveTurns({ revoker: registry });
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("turn-gated placeholders", () => {
  it("are inert while no turn runs on their sandbox, even the sandbox-bound ones", async () => {
    const gated = turnGatedPlaceholders(registry, turns);
    const shared = await registry.issue({ sandboxId: SB, secret: agentSecret, hosts: ["h.test"] });
    expect(await gated.lookup(shared)).toBeNull();
    expect(await gated.forSandbox(SB)).toEqual([]);
    const alice = turnOf("UALICE", 1);
    await turns.begin(SB, alice);
    expect(await gated.lookup(shared)).toMatchObject({ placeholder: shared });
    expect(await gated.forSandbox(SB)).toHaveLength(1);
    await turns.end(SB, alice.turnId);
    expect(await gated.lookup(shared)).toBeNull();
    // Sandbox-bound placeholders survive the turn (the next one reuses them).
    expect(await registry.lookup(shared)).not.toBeNull();
  });

  it("let a person's own placeholder act only in that person's turn, and revoke it when the turn ends", async () => {
    const gated = turnGatedPlaceholders(registry, turns);
    const alice = turnOf("UALICE", 1);
    const own = await registry.issue({
      sandboxId: SB,
      secret: aliceSecret,
      hosts: ["h.test"],
      turn: { turnId: alice.turnId, userKey: alice.userKey },
    });
    // Issued before the turn begins (the context is built first): inert until then.
    expect(await gated.lookup(own)).toBeNull();
    await turns.begin(SB, alice);
    expect(await gated.lookup(own)).toMatchObject({ turn: { userKey: "slack:T1:UALICE" } });

    // The gateway dies mid-turn: its in-process registry is gone, the binding is still
    // in the store. A restarted gateway runs Bob's turn in the same shared sandbox.
    const bob = turnOf("UBOB", 1);
    const crashed = new ActiveTurns({ revoker: registry });
    const gatedAfterCrash = turnGatedPlaceholders(registry, crashed);
    expect(await gatedAfterCrash.lookup(own)).toBeNull();
    await crashed.begin(SB, bob);
    // Bob's turn begins: what Alice's turn left behind is revoked, and never acted for Bob.
    expect(await gatedAfterCrash.lookup(own)).toBeNull();
    expect(await registry.lookup(own)).toBeNull();
    expect(await gatedAfterCrash.forSandbox(SB)).toEqual([]);
  });

  it("refuse a turn-bound placeholder of another turn, even of the same person", async () => {
    const first = turnOf("UALICE", 1);
    const second = turnOf("UALICE", 2);
    const old = await registry.issue({
      sandboxId: SB,
      secret: aliceSecret,
      hosts: ["h.test"],
      turn: { turnId: first.turnId, userKey: first.userKey },
    });
    const mine = await registry.issue({
      sandboxId: SB,
      secret: aliceSecret,
      hosts: ["h.test"],
      turn: { turnId: second.turnId, userKey: second.userKey },
    });
    turns = new ActiveTurns(); // no revocation: the gate alone must hold
    const bare = turnGatedPlaceholders(registry, turns);
    await turns.begin(SB, second);
    expect(await bare.lookup(old)).toBeNull();
    expect(await bare.lookup(mine)).not.toBeNull();
    expect((await bare.forSandbox(SB)).map((b) => b.placeholder)).toEqual([mine]);
    // A binding that names the right turn but another person is refused too.
    await turns.begin(SB, { ...second, userKey: "slack:T1:UBOB" });
    expect(await bare.lookup(mine)).toBeNull();
  });

  it("pass another sandbox's binding through to the proxy, which refuses it itself", async () => {
    const other = await registry.issue({
      sandboxId: "sb_other",
      secret: agentSecret,
      hosts: ["h.test"],
    });
    const forSandbox = turnGatedPlaceholders(registry, turns, { requester: SB });
    await turns.begin(SB, turnOf("UALICE", 1));
    // The proxy compares sandboxes and notes "issued to another sandbox".
    expect(await forSandbox.lookup(other)).toMatchObject({ sandboxId: "sb_other" });
    // Without a requester (the relay, virtual pools) the gate is strict.
    expect(await turnGatedPlaceholders(registry, turns).lookup(other)).toBeNull();
  });

  it("end() closes only its own turn and is safe to repeat", async () => {
    const first = turnOf("UALICE", 1);
    const second = turnOf("UBOB", 1);
    await turns.begin(SB, first);
    await turns.begin(SB, second);
    await turns.end(SB, first.turnId);
    expect(turns.current(SB)?.turnId).toBe(second.turnId);
    await turns.end(SB, second.turnId);
    await turns.end(SB, second.turnId);
    expect(turns.current(SB)).toBeNull();
  });
});
