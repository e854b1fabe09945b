import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "@lobu/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type AdminSession,
  CLAIM_TTL_MS,
  type SettingsSession,
  WebSessions,
} from "../../src/access/web-sessions.ts";
import { userDomain } from "../../src/people/validate.ts";
import { createStore, type Store } from "../../src/store/index.ts";
import { safeEqual } from "../../src/util/safe-equal.ts";

/** Claim codes and sessions on both store adapters' semantics (SQLite here, Redis in CI too). */

const origin = {
  platform: "slack",
  workspace: "T1",
  channelId: "D1",
  userId: "U1",
  isDirect: true,
};
let store: Store;
let now: number;
let sessions: WebSessions;

beforeEach(async () => {
  store = await createStore({
    driver: "sqlite",
    path: join(mkdtempSync(join(tmpdir(), "lobu-sess-")), "s.db"),
  });
  now = Date.now();
  sessions = new WebSessions(store.kv, createLogger("test", { level: "silent" }), {
    now: () => now,
  });
});
afterEach(async () => {
  await store.close();
});

describe("claim codes", () => {
  it("are single-use, and say why they no longer work", async () => {
    const code = await sessions.createClaim({ userKey: "slack:T1:U1", agentId: "default", origin });
    expect((await sessions.peekClaim(code)).ok).toBe(true);
    expect((await sessions.peekClaim(code)).ok).toBe(true);
    const first = await sessions.redeemClaim(code);
    expect(first).toMatchObject({
      ok: true,
      claim: { userKey: "slack:T1:U1", agentId: "default", origin },
    });
    expect(await sessions.redeemClaim(code)).toEqual({ ok: false, reason: "used" });
    expect(await sessions.peekClaim(code)).toEqual({ ok: false, reason: "used" });
    expect(await sessions.redeemClaim("A".repeat(32))).toEqual({ ok: false, reason: "unknown" });
    expect(await sessions.redeemClaim("not a code!")).toEqual({ ok: false, reason: "unknown" });
  });

  it("expire after ten minutes", async () => {
    const code = await sessions.createClaim({ userKey: "slack:T1:U1", agentId: "default", origin });
    now += CLAIM_TTL_MS + 1;
    expect(await sessions.peekClaim(code)).toEqual({ ok: false, reason: "expired" });
    expect(await sessions.redeemClaim(code)).toEqual({ ok: false, reason: "expired" });
  });

  it("are stored only as digests", async () => {
    const code = await sessions.createClaim({ userKey: "slack:T1:U1", agentId: "default", origin });
    const keys = (await store.kv.list("web:")).map((e) => e.key + e.value);
    expect(keys.join()).not.toContain(code);
  });
});

describe("sessions", () => {
  it("expire, can be deleted, and carry their own CSRF token", async () => {
    const { id, session } = await sessions.create<SettingsSession>(
      { kind: "settings", userKey: "slack:T1:U1", agentId: "default", via: "claim" },
      60_000,
    );
    expect(session.csrf).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(await sessions.get(id)).toMatchObject({ userKey: "slack:T1:U1" });
    now += 60_001;
    expect(await sessions.get(id)).toBeNull();
    const other = await sessions.create<AdminSession>(
      { kind: "admin", actor: "api:tok", name: "ops" },
      60_000,
    );
    await sessions.delete(other.id);
    expect(await sessions.get(other.id)).toBeNull();
    expect(await sessions.get(undefined)).toBeNull();
  });

  it("compares tokens in constant time (and correctly)", () => {
    expect(safeEqual("abc", "abc")).toBe(true);
    expect(safeEqual("abc", "abd")).toBe(false);
    expect(safeEqual("abc", "abcd")).toBe(false);
  });
});

describe("domain validation", () => {
  it("accepts hosts and subdomain patterns, refuses broad or denied ones", () => {
    expect(userDomain(" API.Example.COM ", [])).toBe("api.example.com");
    expect(userDomain("*.example.com", [])).toBe("*.example.com");
    for (const bad of ["*", "*.com", "example.com/path", "http://example.com", "-bad.com", ""])
      expect(() => userDomain(bad, []), bad).toThrow();
    expect(() => userDomain("x.corp.example", ["*.corp.example"])).toThrow(/deny rule/);
  });
});
