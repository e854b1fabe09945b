import { Hono } from "hono";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AdapterContext } from "../../src/platforms/shared/adapter.ts";
import { platformRoutes } from "../../src/platforms/shared/routes.ts";
import type { SlackSettings } from "../../src/platforms/slack/config.ts";
import { issueState, oauthRoutes, stateIsValid } from "../../src/platforms/slack/oauth.ts";
import type { Workspaces } from "../../src/platforms/slack/workspaces.ts";
import { Db } from "../../src/store/sqlite/db.ts";
import { SqliteKeyValue } from "../../src/store/sqlite/kv.ts";

/**
 * "Add to Slack" is open to anyone on the internet: /slack/install must store
 * nothing (a flood of installs would fill the store), and the callback must
 * neither write nor call Slack for a state the gateway did not issue, nor show
 * a crafted `error` text on the gateway's own page. The whole install against
 * the Slack emulator is in slack.test.ts ("OAuth install into another workspace").
 */

const CLIENT_SECRET = "slack-client-secret-oauth-test";
let db: Db;
let app: Hono;
let slackCalls = 0;

const rows = () => Number(db.raw.prepare("SELECT count(*) AS n FROM kv").get()?.n);

beforeAll(() => {
  db = new Db(":memory:");
  const kv = new SqliteKeyValue(() => db);
  const state: AdapterContext["state"] = {
    get: (key) => kv.get(`platform:slack:${key}`),
    set: async (key, value, ttlMs) => {
      await kv.set(`platform:slack:${key}`, value, ttlMs ? { ttlMs } : undefined);
    },
    del: async (key) => {
      await kv.del(`platform:slack:${key}`);
    },
    take: (key) => kv.take(`platform:slack:${key}`),
  };
  const settings = {
    apiUrl: "http://127.0.0.1:9/api/",
    authorizeUrl: "http://127.0.0.1:9/oauth/v2/authorize",
    oauth: { clientId: "1.2", clientSecret: CLIENT_SECRET, scopes: ["chat:write"] },
  } as unknown as SlackSettings;
  const ctx = { publicUrl: "http://gateway.test", state } as unknown as AdapterContext;
  const workspaces = {
    install: async () => {
      slackCalls++;
    },
  } as unknown as Workspaces;
  app = new Hono();
  oauthRoutes(platformRoutes(app), { settings, ctx, workspaces, log: pino({ level: "silent" }) });
});

afterAll(() => db.raw.close());

async function install(): Promise<{ state: string; cookie: string }> {
  const res = await app.request("/slack/install");
  expect(res.status).toBe(302);
  const state = new URL(res.headers.get("location")!).searchParams.get("state")!;
  return { state, cookie: res.headers.get("set-cookie")!.split(";")[0]! };
}

describe("Slack OAuth: nothing stored before Slack vouches", () => {
  it("a flood of /slack/install stores nothing", async () => {
    const before = rows();
    for (let i = 0; i < 200; i++) await install();
    expect(rows()).toBe(before);
  });

  it("the callback refuses a made-up, foreign or expired state without writing", async () => {
    const before = rows();
    const foreign = issueState("another-apps-secret");
    const expired = issueState(CLIENT_SECRET, Date.now() - 11 * 60_000);
    const forged = `${Date.now()}.${"a".repeat(32)}.${"0".repeat(64)}`;
    for (const state of ["made-up", foreign, expired, forged]) {
      const res = await app.request(`/slack/oauth/callback?code=c&state=${state}`, {
        headers: { cookie: `lobu_slack_oauth=${state}` },
      });
      expect(res.status).toBe(400);
      expect(await res.text()).toContain("Installation link expired");
    }
    expect(rows()).toBe(before);
    expect(slackCalls).toBe(0);
  });

  it("a state the gateway issued is valid for ten minutes, for this app only", async () => {
    const { state, cookie } = await install();
    expect(cookie).toBe(`lobu_slack_oauth=${state}`);
    expect(stateIsValid(CLIENT_SECRET, state)).toBe(true);
    expect(stateIsValid("another-apps-secret", state)).toBe(false);
    expect(stateIsValid(CLIENT_SECRET, state, Date.now() + 11 * 60_000)).toBe(false);
    const tampered = `${state.slice(0, -1)}${state.endsWith("0") ? "1" : "0"}`;
    expect(stateIsValid(CLIENT_SECRET, tampered)).toBe(false);
  });

  it("shows only Slack's own error codes, not text from a crafted link", async () => {
    const crafted = encodeURIComponent(
      "access_denied. Your workspace was suspended: call +1 555 0100 to restore it",
    );
    const res = await app.request(`/slack/oauth/callback?error=${crafted}`);
    expect(res.status).toBe(400);
    const text = await res.text();
    expect(text).not.toContain("555");
    expect(text).toContain("Slack reported: an error");
    const denied = await app.request("/slack/oauth/callback?error=access_denied");
    expect(await denied.text()).toContain("Slack reported: access_denied");
  });
});
