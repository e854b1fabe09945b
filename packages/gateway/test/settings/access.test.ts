import {
  type GatewayProcess,
  startGatewayProcess,
  startTelegramEmulator,
  type TelegramEmulator,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sendFiller } from "../platforms/helpers.ts";
import { apiSettingsLink, openSettings, postClaim, sessionCookieOf } from "./helpers.ts";

/**
 * Who may open the settings page and the admin UI, against a real `lobu run`:
 * one-time claim links, Telegram Mini App initData, sessions, CSRF and Origin
 * checks, roles, and the headers every page carries.
 */

const BOT_TOKEN = "7000000002:AAsettings-test-token";
let tg: TelegramEmulator;
let gw: GatewayProcess;

beforeAll(async () => {
  tg = await startTelegramEmulator({
    botToken: BOT_TOKEN,
    botUsername: "lobu_settings_bot",
    rateLimits: false,
  });
  gw = await startGatewayProcess({
    toml: [
      "[network]",
      'deny = ["*.internal.example"]',
      "",
      "[agents.default]",
      'name = "Helper"',
      'tools = ["bash", "read", "write"]',
      "[agents.default.policy]",
      'tools = { bash = "ask", write = "deny" }',
      "",
      "[skills.notes]",
      'description = "Keeps notes"',
      'instructions = "Write notes to notes.md."',
      "",
      "[admin]",
      'users = ["api::boss"]',
      "",
      "[platforms.telegram]",
      'mode = "polling"',
      'init_data_max_age = "1h"',
    ].join("\n"),
    env: {
      ANTHROPIC_API_KEY: "sk-ant-team-key-0123456789abcdef",
      OPENAI_API_KEY: undefined,
      TELEGRAM_BOT_TOKEN: BOT_TOKEN,
      TELEGRAM_API_ROOT: tg.url,
    },
  });
});

afterAll(async () => {
  await gw?.stop();
  await tg?.close();
});

describe("claim links", () => {
  it("shows a confirmation page without using the code, then opens a session once", async () => {
    const url = await apiSettingsLink(gw, "alice", { userName: "Alice" });
    expect(url).toMatch(new RegExp(`^${gw.url}/settings/claim/[A-Za-z0-9_-]{32}$`));

    // Looking at the link (a chat's link preview does this) does not use it.
    for (let i = 0; i < 2; i++) {
      const look = await fetch(url);
      expect(look.status).toBe(200);
      const html = await look.text();
      expect(html).toContain("Alice");
      expect(html).toContain('<form method="post"');
      expect(look.headers.get("content-security-policy")).toMatch(/script-src 'self' 'nonce-/);
      expect(look.headers.get("referrer-policy")).toBe("same-origin");
    }

    const first = await postClaim(url);
    expect(first.status).toBe(303);
    expect(first.headers.get("location")).toBe("/settings");
    const setCookie = first.headers.getSetCookie().find((c) => c.startsWith("lobu_settings="))!;
    expect(setCookie).toMatch(/HttpOnly/i);
    expect(setCookie).toMatch(/SameSite=Lax/i);
    expect(setCookie).toMatch(/Path=\/settings/);
    // Plain http here: Secure would make browsers drop the cookie.
    expect(setCookie).not.toMatch(/Secure/i);

    const state = await fetch(`${gw.url}/settings/api/state`, {
      headers: { cookie: sessionCookieOf(first)! },
    });
    expect(state.status).toBe(200);
    expect(await state.json()).toMatchObject({
      user: { userKey: "api::alice", name: "Alice" },
      agent: { id: "default", name: "Helper" },
    });

    // Used: a clear page, 410, and no second session.
    const again = await postClaim(url);
    expect(again.status).toBe(410);
    expect(sessionCookieOf(again)).toBeUndefined();
    expect(await again.text()).toContain("already used");
    expect((await fetch(url)).status).toBe(410);
  });

  it("gives exactly one session when a code is redeemed concurrently", async () => {
    const url = await apiSettingsLink(gw, "racer");
    const results = await Promise.all(Array.from({ length: 8 }, () => postClaim(url)));
    expect(results.filter((r) => r.status === 303)).toHaveLength(1);
    expect(results.filter((r) => r.status === 410)).toHaveLength(7);
  });

  it("refuses unknown codes with 401 and cross-site claims with 403", async () => {
    const bogus = await fetch(`${gw.url}/settings/claim/${"x".repeat(32)}`);
    expect(bogus.status).toBe(401);
    expect(await bogus.text()).toContain("not valid");
    expect((await fetch(`${gw.url}/settings/claim/..%2f..%2fetc`)).status).toBe(401);

    const url = await apiSettingsLink(gw, "mallory-target");
    const cross = await postClaim(url, { origin: "https://evil.example" });
    expect(cross.status).toBe(403);
    // The refused attempt did not use the code.
    expect((await postClaim(url)).status).toBe(303);
  });

  it("leaves the code unused when a chunked form is refused as too large", async () => {
    const url = await apiSettingsLink(gw, "oversized-form");
    const refused = await sendFiller(url, {
      totalBytes: 256 * 1024,
      sized: false,
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(refused.status).toBe(413);
    expect((await postClaim(url)).status).toBe(303);
  });

  it("keeps the Mini App launch fragment across the redirect", async () => {
    const res = await gw.api("/api/v1/settings-links", {
      method: "POST",
      body: JSON.stringify({ user: "bob", agent: "default" }),
    });
    expect(res.status).toBe(201);
    const { url, expiresAt } = (await res.json()) as { url: string; expiresAt: number };
    expect(expiresAt - Date.now()).toBeGreaterThan(9 * 60_000);
    expect(expiresAt - Date.now()).toBeLessThanOrEqual(10 * 60_000);
    const claimed = await fetch(url, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "fragment=tgWebAppData%3Dabc",
    });
    expect(claimed.headers.get("location")).toBe("/settings#tgWebAppData=abc");
  });

  it("needs an API token to mint links", async () => {
    const res = await fetch(`${gw.url}/api/v1/settings-links`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user: "x" }),
    });
    expect(res.status).toBe(401);
  });
});

describe("sessions and CSRF", () => {
  it("refuses the API without a session", async () => {
    const res = await fetch(`${gw.url}/settings/api/state`);
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { hint: string } }).error.hint).toMatch(/settings/);
  });

  it("refuses changes without the CSRF token, with a wrong one, or from another site", async () => {
    const me = await openSettings(gw, await apiSettingsLink(gw, "carol"));
    const body = { value: "sk-ant-carol-own-key-0123456789" };
    expect((await me.call("PUT", "/keys/anthropic", body, { csrf: false })).status).toBe(403);
    expect(
      (
        await me.call("PUT", "/keys/anthropic", body, {
          csrf: false,
          headers: { "x-csrf-token": "nope" },
        })
      ).status,
    ).toBe(403);
    expect(
      (
        await me.call("PUT", "/keys/anthropic", body, {
          headers: { origin: "https://evil.example" },
        })
      ).status,
    ).toBe(403);
    expect(
      (
        await me.call("PUT", "/keys/anthropic", body, {
          headers: { "sec-fetch-site": "cross-site" },
        })
      ).status,
    ).toBe(403);
    // Reads need no token.
    expect((await me.call("GET", "/state", undefined, { csrf: false })).status).toBe(200);

    const ok = await me.call("PUT", "/keys/anthropic", body, { headers: { origin: gw.url } });
    expect(ok.status).toBe(200);
    const view = (await ok.json()) as {
      model: { providers: { id: string; userKey: { hint: string } | null }[] };
    };
    const text = JSON.stringify(view);
    // Never shown again: only the masked hint comes back.
    expect(text).not.toContain(body.value);
    expect(view.model.providers.find((p) => p.id === "anthropic")?.userKey?.hint).toBe("sk-…6789");
  });

  it("stores a BYO key at user scope, replaces and deletes it", async () => {
    const me = await openSettings(gw, await apiSettingsLink(gw, "dave"));
    await me.call("PUT", "/keys/openai", { value: "sk-first-0000000000000000" });
    const replaced = await me.call("PUT", "/keys/openai", { value: "sk-second-111111111111111" });
    expect(JSON.stringify(await replaced.json())).toContain("sk-…1111");
    // Another person sees no key of theirs.
    const other = await openSettings(gw, await apiSettingsLink(gw, "erin"));
    const theirs = (await (await other.call("GET", "/state")).json()) as {
      model: { providers: { id: string; userKey: unknown }[] };
    };
    expect(theirs.model.providers.find((p) => p.id === "openai")?.userKey).toBeNull();
    expect((await me.call("DELETE", "/keys/openai")).status).toBe(200);
    expect((await me.call("DELETE", "/keys/openai")).status).toBe(404);
    expect((await me.call("PUT", "/keys/nosuch", { value: "x" })).status).toBe(400);
  });

  it("ends the session on logout", async () => {
    const me = await openSettings(gw, await apiSettingsLink(gw, "frank"));
    expect((await me.call("POST", "/logout", {})).status).toBe(200);
    expect((await me.call("GET", "/state")).status).toBe(401);
  });
});

describe("what people can change", () => {
  it("validates domains and never overrides the team's deny list", async () => {
    const me = await openSettings(gw, await apiSettingsLink(gw, "gina"));
    for (const bad of ["*", "*.com", "https://api.github.com/x", "exa mple.com", ""]) {
      const res = await me.call("POST", "/domains", { name: bad });
      expect(res.status, bad).toBe(400);
    }
    // Public suffixes (Public Suffix List, private section included): everyone's sites.
    for (const suffix of [
      "*.co.uk",
      "*.github.io",
      "github.io",
      "*.GitHub.IO.",
      "*.xn--55qx5d.cn",
    ]) {
      const res = await me.call("POST", "/domains", { name: suffix });
      expect(res.status, suffix).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(
        /public suffix/,
      );
    }
    const denied = await me.call("POST", "/domains", { name: "db.internal.example" });
    expect(denied.status).toBe(400);
    expect(((await denied.json()) as { error: { message: string } }).error.message).toMatch(
      /deny rule/,
    );
    const ok = await me.call("POST", "/domains", { name: "API.GitHub.com" });
    expect(((await ok.json()) as { domains: { user: string[] } }).domains.user).toEqual([
      "api.github.com",
    ]);
    await me.call("POST", "/domains", { name: "*.alice.github.io" });
    const removed = await me.call("DELETE", `/domains/${encodeURIComponent("api.github.com")}`);
    expect(((await removed.json()) as { domains: { user: string[] } }).domains.user).toEqual([
      "*.alice.github.io",
    ]);
  });

  it("settles 'ask' tools but cannot loosen 'deny'", async () => {
    const me = await openSettings(gw, await apiSettingsLink(gw, "hank"));
    const state = (await (await me.call("GET", "/state")).json()) as {
      tools: { name: string; agentPolicy: string; effective: string }[];
    };
    expect(state.tools).toEqual([
      { name: "bash", agentPolicy: "ask", effective: "ask" },
      { name: "write", agentPolicy: "deny", effective: "deny" },
    ]);
    expect((await me.call("PUT", "/tools/write", { policy: "allow" })).status).toBe(403);
    expect((await me.call("PUT", "/tools/read", { policy: "allow" })).status).toBe(400);
    const allowed = await me.call("PUT", "/tools/bash", { policy: "allow" });
    expect(
      ((await allowed.json()) as { tools: { name: string; effective: string }[] }).tools[0],
    ).toMatchObject({ name: "bash", effective: "allow" });
    const back = await me.call("PUT", "/tools/bash", { policy: "ask" });
    expect(
      ((await back.json()) as { tools: { name: string; effective: string }[] }).tools[0],
    ).toMatchObject({ effective: "ask" });
  });

  it("installs skills from the catalog only, and manages packages and secrets", async () => {
    const me = await openSettings(gw, await apiSettingsLink(gw, "ivy"));
    expect((await me.call("POST", "/skills", { name: "nosuch" })).status).toBe(400);
    const installed = (await (await me.call("POST", "/skills", { name: "notes" })).json()) as {
      skills: { installed: string[] };
    };
    expect(installed.skills.installed).toEqual(["notes"]);
    expect((await me.call("POST", "/packages", { name: "rm -rf /" })).status).toBe(400);
    // Packages are off on this gateway: a choice that could not act is refused, not stored.
    const pkgs = await me.call("POST", "/packages", { name: "ripgrep" });
    expect(pkgs.status).toBe(501);
    expect(await pkgs.json()).toMatchObject({
      error: { code: "not_provisioned", message: "Nix packages are not enabled on this gateway" },
    });
    const state = (await (await me.call("GET", "/state")).json()) as {
      packages: { installed: string[]; unavailable?: string };
    };
    expect(state.packages).toMatchObject({
      installed: [],
      unavailable: "Nix packages are not enabled on this gateway",
    });
    expect((await me.call("PUT", "/secrets/provider.anthropic", { value: "x" })).status).toBe(400);
    const secret = (await (
      await me.call("PUT", "/secrets/github", { value: "ghp_secretvalue0123456789" })
    ).json()) as { secrets: { name: string; hint: string }[] };
    expect(secret.secrets).toEqual([expect.objectContaining({ name: "github", hint: "ghp…6789" })]);
    expect((await me.call("POST", "/mcp/nosuch", {})).status).toBe(400);
  });

  it("records every change in the audit log", async () => {
    const res = await gw.api("/api/v1/audit?action=settings.&limit=200");
    const records = ((await res.json()) as { records: { action: string; actor: string }[] })
      .records;
    expect(records).toContainEqual(
      expect.objectContaining({ action: "settings.domain_allowed", actor: "api::gina" }),
    );
    expect(records).toContainEqual(
      expect.objectContaining({ action: "settings.provider_key_set", actor: "api::carol" }),
    );
    expect(JSON.stringify(records)).not.toContain("sk-ant-carol-own-key");
  });

  // After the audit test: 200 more records would push its records out of its window.
  it("caps how many domains (or packages) one person adds", async () => {
    const me = await openSettings(gw, await apiSettingsLink(gw, "pat"));
    for (let i = 0; i < 200; i++) {
      const res = await me.call("POST", "/domains", { name: `d${i}.example.com` });
      expect(res.status, `domain ${i}`).toBe(200);
    }
    const over = await me.call("POST", "/domains", { name: "one-too-many.example.com" });
    expect(over.status).toBe(400);
    expect(((await over.json()) as { error: { message: string } }).error.message).toBe(
      "at most 200 domains",
    );
    // Adding one already there is not growth.
    expect((await me.call("POST", "/domains", { name: "d0.example.com" })).status).toBe(200);
  });
});

describe("Telegram Mini App", () => {
  const login = (initData: string, headers: Record<string, string> = {}) =>
    fetch(`${gw.url}/settings/api/session/telegram`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ initData }),
    });

  it("opens a session for the user Telegram signed for", async () => {
    const res = await login(tg.webAppInitData({ user: { id: 4242, first_name: "Tess" } }));
    expect(res.status).toBe(200);
    const { token, csrf } = (await res.json()) as { token: string; csrf: string };
    // Inside Telegram Web's iframe cookies may be refused: the header works alike.
    const state = await fetch(`${gw.url}/settings/api/state`, {
      headers: { "x-lobu-session": token },
    });
    expect(await state.json()).toMatchObject({ user: { userKey: "telegram::4242", name: "Tess" } });
    const put = await fetch(`${gw.url}/settings/api/domains`, {
      method: "POST",
      headers: {
        "x-lobu-session": token,
        "x-csrf-token": csrf,
        "content-type": "application/json",
      },
      body: JSON.stringify({ name: "example.org" }),
    });
    expect(put.status).toBe(200);
  });

  it("refuses forged, tampered and stale initData with 401", async () => {
    const forged = tg.webAppInitData({
      user: { id: 1, first_name: "Eve" },
      botToken: "7000000009:AAwrong",
    });
    const tampered = tg.webAppInitData({
      user: { id: 1, first_name: "Eve" },
      tamper: { user: JSON.stringify({ id: 4242, first_name: "Tess" }) },
    });
    const stale = tg.webAppInitData({
      user: { id: 1, first_name: "Eve" },
      authDate: Math.floor(Date.now() / 1000) - 7200,
    });
    const noHash = tg.webAppInitData({ user: { id: 1, first_name: "Eve" }, omitHash: true });
    for (const initData of [forged, tampered, stale, noHash]) {
      const res = await login(initData);
      expect(res.status).toBe(401);
      expect(res.headers.getSetCookie()).toEqual([]);
    }
    expect(
      (
        await login(tg.webAppInitData({ user: { id: 5, first_name: "X" } }), {
          origin: "https://evil.example",
        })
      ).status,
    ).toBe(403);
  });
});

describe("headers", () => {
  it("serves the page with a strict CSP, framing only for Telegram Web, and no caching", async () => {
    const res = await fetch(`${gw.url}/settings`);
    expect(res.status).toBe(200);
    const csp = res.headers.get("content-security-policy")!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    // Telegram is set up here: Telegram Web may frame the Mini App, nobody else.
    expect(csp).toContain("frame-ancestors 'self' https://web.telegram.org");
    expect(res.headers.get("x-frame-options")).toBeNull();
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    const html = await res.text();
    const asset = /src="(\/settings\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(asset).toBeDefined();
    const js = await fetch(`${gw.url}${asset}`);
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toMatch(/javascript/);
    expect(js.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect((await fetch(`${gw.url}/settings/assets/..%2Findex.html`)).status).toBe(404);
  });

  it("never lets the admin UI be framed", async () => {
    const res = await fetch(`${gw.url}/admin`);
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(res.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
  });
});

describe("admin access", () => {
  const adminLogin = (token: string, headers: Record<string, string> = {}) =>
    fetch(`${gw.url}/admin/api/login`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ token }),
    });

  it("exchanges an admin token for a session cookie; CSRF applies", async () => {
    const res = await adminLogin(gw.token);
    expect(res.status).toBe(200);
    const { csrf } = (await res.json()) as { csrf: string };
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith("lobu_admin="))!;
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/Path=\/admin/);
    const jar = cookie.split(";")[0]!;
    const sandboxes = await fetch(`${gw.url}/admin/api/sandboxes`, { headers: { cookie: jar } });
    expect(sandboxes.status).toBe(200);
    // The most recently active (at most 200) and how many there are in all.
    expect(await sandboxes.json()).toMatchObject({
      total: expect.any(Number),
      sandboxes: expect.any(Array),
    });
    for (const path of ["/users", "/usage", "/agents", "/audit?action=settings."]) {
      expect(
        (await fetch(`${gw.url}/admin/api${path}`, { headers: { cookie: jar } })).status,
        path,
      ).toBe(200);
    }
    const stop = (headers: Record<string, string>) =>
      fetch(`${gw.url}/admin/api/sandboxes/nosuch/stop`, {
        method: "POST",
        headers: { cookie: jar, ...headers },
      });
    expect((await stop({})).status).toBe(403);
    expect((await stop({ "x-csrf-token": csrf })).status).toBe(404);
  });

  it("rejects malformed usage and audit queries with a clear 400", async () => {
    const login = await adminLogin(gw.token);
    const jar = login.headers
      .getSetCookie()
      .find((c) => c.startsWith("lobu_admin="))!
      .split(";")[0]!;
    const get = (path: string) => fetch(`${gw.url}/admin/api${path}`, { headers: { cookie: jar } });
    for (const path of [
      "/usage?since=last-week",
      "/usage?since=2025-02-31",
      "/audit?limit=0",
      "/audit?limit=lots",
      "/audit?limit=1001",
    ]) {
      const res = await get(path);
      expect(res.status, path).toBe(400);
      expect(
        ((await res.json()) as { error: { hint?: string; message: string } }).error.message,
      ).toMatch(/since=|limit=/);
    }
    const usage = await get("/usage?since=2000-01-01");
    expect(usage.status).toBe(200);
    expect(await usage.json()).toMatchObject({
      since: "2000-01-01",
      totals: expect.any(Array),
      daily: expect.any(Array),
    });
    const all = await get("/usage");
    expect(await all.json()).toMatchObject({ since: null });
    const audit = (await (await get("/audit?action=settings.&limit=3")).json()) as {
      records: { action: string }[];
    };
    expect(audit.records).toHaveLength(3);
    expect(audit.records.every((r) => r.action.startsWith("settings."))).toBe(true);
  });

  it("refuses non-admins: client tokens 403, bad tokens 401, no session 401", async () => {
    const created = await gw.api("/api/v1/tokens", {
      method: "POST",
      body: JSON.stringify({ name: "app", role: "client" }),
    });
    const { token } = (await created.json()) as { token: string };
    expect((await adminLogin(token)).status).toBe(403);
    expect((await adminLogin("lobu_tok_not-a-real-token")).status).toBe(401);
    expect((await adminLogin(gw.token, { origin: "https://evil.example" })).status).toBe(403);
    expect((await fetch(`${gw.url}/admin/api/sandboxes`)).status).toBe(401);
  });

  it("lets configured admins in from their settings page, and nobody else", async () => {
    const someone = await openSettings(gw, await apiSettingsLink(gw, "jo"));
    expect((await someone.call("POST", "/admin-login", {})).status).toBe(403);
    const boss = await openSettings(gw, await apiSettingsLink(gw, "boss"));
    expect(
      ((await (await boss.call("GET", "/state")).json()) as { isAdmin: boolean }).isAdmin,
    ).toBe(true);
    const res = await boss.call("POST", "/admin-login", {});
    expect(res.status).toBe(200);
    const jar = res.headers
      .getSetCookie()
      .find((c) => c.startsWith("lobu_admin="))!
      .split(";")[0]!;
    const session = await fetch(`${gw.url}/admin/api/session`, { headers: { cookie: jar } });
    expect(await session.json()).toMatchObject({ actor: "api::boss" });
  });
});

describe("behind HTTPS, without a built web bundle", () => {
  it("says how to build the bundle, and marks cookies Secure for an https public URL", async () => {
    const bare = await startGatewayProcess({
      env: {
        LOBU_WEB_DIST: "/nonexistent/lobu-web-dist",
        LOBU_PUBLIC_URL: "https://lobu.example.com",
        OPENAI_API_KEY: undefined,
      },
    });
    try {
      const res = await fetch(`${bare.url}/settings`);
      expect(res.status).toBe(503);
      expect(await res.text()).toContain("npm run build -w @lobu/web");
      expect(res.headers.get("x-frame-options")).toBe("DENY");
      expect(res.headers.get("strict-transport-security")).toBe("max-age=31536000");

      const link = await bare.api("/api/v1/settings-links", {
        method: "POST",
        body: JSON.stringify({ user: "sam" }),
      });
      const { url } = (await link.json()) as { url: string };
      expect(url).toMatch(/^https:\/\/lobu\.example\.com\/settings\/claim\//);
      // The browser's Origin is the public URL (a TLS-terminating proxy sits in front).
      const claimed = await postClaim(url.replace("https://lobu.example.com", bare.url), {
        origin: "https://lobu.example.com",
      });
      expect(claimed.status).toBe(303);
      const cookie = claimed.headers.getSetCookie().find((c) => c.startsWith("lobu_settings="))!;
      expect(cookie).toMatch(/; Secure/i);
      expect(cookie).toMatch(/HttpOnly/i);
    } finally {
      await bare.stop();
    }
  });
});
