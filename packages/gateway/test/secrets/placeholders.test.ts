import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isPlaceholder } from "@lobu/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PlaceholderRegistry } from "../../src/secrets/placeholders.ts";
import type { SecretRef } from "../../src/secrets/store.ts";
import { createStore } from "../../src/store/index.ts";
import type { Store } from "../../src/store/port.ts";

let dir: string;
let store: Store;
let registry: PlaceholderRegistry;
const github: SecretRef = { name: "github", scope: { kind: "agent", agentId: "helper" } };
const openai: SecretRef = { name: "provider.openai", scope: { kind: "installation" } };

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "lobu-ph-"));
  store = await createStore({ driver: "sqlite", path: join(dir, "lobu.db") });
  registry = new PlaceholderRegistry(store.kv, { now: () => 42 });
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("PlaceholderRegistry", () => {
  it("issues lobu_secret_<uuid> placeholders, stable per sandbox and secret", async () => {
    const a = await registry.issue({
      sandboxId: "sb_a",
      secret: github,
      hosts: ["api.github.com"],
    });
    expect(isPlaceholder(a)).toBe(true);
    expect(
      await registry.issue({ sandboxId: "sb_a", secret: github, hosts: ["api.github.com"] }),
    ).toBe(a);
    const otherSandbox = await registry.issue({
      sandboxId: "sb_b",
      secret: github,
      hosts: ["api.github.com"],
    });
    const otherSecret = await registry.issue({
      sandboxId: "sb_a",
      secret: openai,
      hosts: ["api.openai.com"],
    });
    expect(new Set([a, otherSandbox, otherSecret]).size).toBe(3);
    expect(await registry.lookup(a)).toEqual({
      placeholder: a,
      sandboxId: "sb_a",
      secret: github,
      hosts: ["api.github.com"],
      locations: ["header", "url", "body"],
      issuedAt: 42,
    });
  });

  it("agrees on one placeholder when issued concurrently", async () => {
    const all = await Promise.all(
      Array.from({ length: 8 }, () =>
        registry.issue({ sandboxId: "sb_a", secret: github, hosts: ["api.github.com"] }),
      ),
    );
    expect(new Set(all).size).toBe(1);
    // The losers' bindings, written alongside their index attempt, are gone.
    const bindings = await store.kv.list("ph:", { limit: 100 });
    expect(bindings.map((b) => b.key)).toEqual([`ph:${all[0]}`]);
    expect(await registry.forSandbox("sb_a")).toHaveLength(1);
  });

  it("normalizes host patterns and updates them on re-issue", async () => {
    const p = await registry.issue({
      sandboxId: "sb_a",
      secret: github,
      hosts: ["API.GitHub.com.", "*.Bücher.example"],
    });
    expect((await registry.lookup(p))?.hosts).toEqual([
      "*.xn--bcher-kva.example",
      "api.github.com",
    ]);
    expect(
      await registry.issue({
        sandboxId: "sb_a",
        secret: github,
        hosts: ["uploads.github.com"],
        locations: ["header"],
      }),
    ).toBe(p);
    expect(await registry.lookup(p)).toMatchObject({
      hosts: ["uploads.github.com"],
      locations: ["header"],
    });
    await expect(registry.issue({ sandboxId: "sb_a", secret: github, hosts: [] })).rejects.toThrow(
      /at least one host/,
    );
    await expect(
      registry.issue({ sandboxId: "sb_a", secret: github, hosts: ["not a host"] }),
    ).rejects.toThrow(/not a domain pattern/);
  });

  it("lists, revokes one, and revokes a whole sandbox", async () => {
    const a1 = await registry.issue({
      sandboxId: "sb_a",
      secret: github,
      hosts: ["api.github.com"],
    });
    const a2 = await registry.issue({
      sandboxId: "sb_a",
      secret: openai,
      hosts: ["api.openai.com"],
    });
    const b1 = await registry.issue({
      sandboxId: "sb_ab",
      secret: github,
      hosts: ["api.github.com"],
    });
    expect((await registry.forSandbox("sb_a")).map((b) => b.placeholder).sort()).toEqual(
      [a1, a2].sort(),
    );
    expect(await registry.revoke(a1)).toBe(true);
    expect(await registry.revoke(a1)).toBe(false);
    expect(await registry.lookup(a1)).toBeNull();
    const again = await registry.issue({
      sandboxId: "sb_a",
      secret: github,
      hosts: ["api.github.com"],
    });
    expect(again).not.toBe(a1);
    expect(await registry.revokeSandbox("sb_a")).toBe(2);
    expect(await registry.forSandbox("sb_a")).toEqual([]);
    expect(await registry.lookup(a2)).toBeNull();
    // A sandbox whose id is a prefix of another's is untouched.
    expect(await registry.lookup(b1)).not.toBeNull();
  });

  it("issues a fresh placeholder per turn for turn-bound credentials and revokes them by turn", async () => {
    const alice: SecretRef = {
      name: "github",
      scope: { kind: "user", agentId: "helper", userKey: "slack:T1:UALICE" },
    };
    const t1 = { turnId: "msg_1.1", userKey: "slack:T1:UALICE" };
    const t2 = { turnId: "msg_1.2", userKey: "slack:T1:UALICE" };
    const issue = (turn: typeof t1) =>
      registry.issue({ sandboxId: "sb_a", secret: alice, hosts: ["api.github.com"], turn });
    const p1 = await issue(t1);
    expect(await issue(t1)).toBe(p1);
    const p2 = await issue(t2);
    expect(p2).not.toBe(p1);
    expect(await registry.lookup(p1)).toMatchObject({ sandboxId: "sb_a", turn: t1 });
    const shared = await registry.issue({
      sandboxId: "sb_a",
      secret: github,
      hosts: ["api.github.com"],
    });
    // A turn id that is a prefix of another's is a different turn.
    const t10 = await issue({ ...t1, turnId: "msg_1.10" });
    expect((await registry.forSandbox("sb_a")).map((b) => b.placeholder).sort()).toEqual(
      [p1, p2, shared, t10].sort(),
    );
    expect(await registry.revokeTurns("sb_a", { turnId: "msg_1.1" })).toBe(1);
    expect(await registry.lookup(p1)).toBeNull();
    expect(await registry.lookup(t10)).not.toBeNull();
    // When a turn begins, what other turns left behind goes; sandbox-bound ones stay.
    expect(await registry.revokeTurns("sb_a", { except: "msg_1.2" })).toBe(1);
    expect((await registry.forSandbox("sb_a")).map((b) => b.placeholder).sort()).toEqual(
      [p2, shared].sort(),
    );
    expect(await registry.revoke(p2)).toBe(true);
    expect(await registry.forSandbox("sb_a")).toEqual([
      expect.objectContaining({ placeholder: shared }),
    ]);
  });

  it("looks up only well-formed placeholders", async () => {
    expect(await registry.lookup("lobu_secret_nope")).toBeNull();
    expect(await registry.lookup("lobu_secret_00000000-0000-0000-0000-000000000000")).toBeNull();
  });
});
