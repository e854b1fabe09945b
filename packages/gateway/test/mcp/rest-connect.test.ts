import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, LobuConfig } from "@lobu/core";
import { type Gateway, startGateway } from "@lobu/gateway";
import { type GatewayProcess, type MockLlm, removeDataDir, startMockLlm } from "@lobu/testkit";
import {
  type AuthServer,
  Browser,
  type McpServerEmulator,
  startAuthServer,
  startMcpServer,
} from "@lobu/testkit/mcp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiSettingsLink, eventReader, openSettings } from "../settings/helpers.ts";

/**
 * The MCP gateway on the REST channel (what `lobu chat` uses) and the
 * settings page: the connect prompt as an event with its link, the server's
 * tool policy, progress, a team server with a static credential from the
 * secret store, a server whose metadata points at a private address
 * (refused), and connections listed, disconnected (revoked) and made again
 * from the settings page.
 */

const KEY = "sk-ant-mcp-rest-0123456789abcdef";
const TEAM_KEY = "team-key-0123456789abcdef";

let llm: MockLlm;
let auth: AuthServer;
let notes: McpServerEmulator;
let evil: McpServerEmulator;
let team: McpServerEmulator;
let legacy: McpServerEmulator;
let gw: Gateway;
let token: string;
let dataDir: string;

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: KEY });
  let url = "";
  auth = await startAuthServer({ resource: () => url });
  notes = await startMcpServer({ auth });
  url = notes.url;
  evil = await startMcpServer({ auth });
  evil.setAuthorizationServer("https://169.254.169.254/");
  team = await startMcpServer({ apiKey: TEAM_KEY });
  legacy = await startMcpServer({ legacySse: true });
  dataDir = mkdtempSync(join(tmpdir(), "lobu-mcp-rest-"));
  gw = await startGateway({
    config: LobuConfig.parse({
      sandbox: { idle_timeout: "10m" },
      agents: { default: { policy: { request_timeout: "2m" } } },
      mcp: {
        notes: {
          url: notes.url,
          policy: "allow",
          tools: { "add_*": "ask", whoami: "deny" },
        },
        evil: { url: evil.url },
        // The same server through a client registered ahead of time (no RFC 7591).
        preset: {
          url: notes.url,
          policy: "allow",
          oauth: { client_id: "lobu-preset", client_secret: "PRESET_CLIENT_SECRET" },
        },
        legacy: { url: legacy.url, policy: "allow" },
        team: {
          url: team.url,
          // biome-ignore lint/suspicious/noTemplateCurlyInString: lobu.toml's secret reference
          headers: { "x-api-key": "${secret:TEAM_NOTES_KEY}" },
          policy: "allow",
        },
      },
    }),
    dataDir,
    port: 0,
    env: { ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: llm.url },
    log: createLogger("test", { level: "silent" }),
  });
  token = readFileSync(gw.summary.adminTokenFile, "utf8").trim();
  await auth.registerClient({
    clientId: "lobu-preset",
    clientSecret: "preset-secret-0123456789abcdef",
    redirectUri: `${gw.url}/mcp/callback`,
  });
  await api("/api/v1/secrets/PRESET_CLIENT_SECRET", {
    method: "PUT",
    body: JSON.stringify({ value: "preset-secret-0123456789abcdef" }),
  });
  await api("/api/v1/secrets/TEAM_NOTES_KEY", {
    method: "PUT",
    body: JSON.stringify({ value: TEAM_KEY }),
  });
});

afterAll(async () => {
  await gw?.close();
  for (const s of [notes, evil, team, legacy]) await s?.close();
  await auth?.close();
  await llm?.close();
  if (dataDir) removeDataDir(dataDir);
});

function api(path: string, init: RequestInit = {}) {
  return fetch(`${gw.url}${path}`, {
    ...init,
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      ...(init.headers as Record<string, string> | undefined),
    },
  });
}

async function send(user: string, text: string) {
  return eventReader(
    await api("/api/v1/agents/default/messages", {
      method: "POST",
      headers: { accept: "text/event-stream" },
      body: JSON.stringify({ user, channel: "dm", text }),
    }),
  );
}

function script(text: string, tool: string, input: Record<string, unknown> = {}) {
  llm.when(
    (r) => r.lastUserText === text,
    { toolCalls: [{ name: tool, input }] },
    (r) => ({ text: `RESULT: ${r.toolResults[0]?.content.slice(0, 300)}` }),
  );
}

function offered(text: string): string[] {
  const round = llm.requests.filter((r) => r.lastUserText === text).at(0);
  return ((round?.body.tools ?? []) as { name: string }[]).map((t) => t.name);
}

/** Poll until `check` holds; the test's timeout bounds it. */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 50));
}

/** The settings page of `user` (an API-channel person). */
async function settingsOf(user: string) {
  const asProcess = { url: gw.url, api } as unknown as GatewayProcess;
  return openSettings(asProcess, await apiSettingsLink(asProcess, user));
}

/** Connect `user`'s notes account from their settings page, in a new browser. */
async function connectFromSettings(user: string) {
  const settings = await settingsOf(user);
  const { url } = (await (await settings.call("POST", "/mcp/notes/connect")).json()) as {
    url: string;
  };
  const done = await new Browser().open(url, { account: `${user}-acct` });
  expect(done.status).toBe(200);
}

type McpView = { servers: { id: string; status: string }[]; connected: string[] };

describe("MCP on the REST channel and the settings page", () => {
  it("the connect prompt is an event with the link; after connecting, the server's policy applies", async () => {
    const settings = await settingsOf("ada");
    // Added from the settings page, not connected yet.
    const added = (await (await settings.call("POST", "/mcp/notes")).json()) as { mcp: McpView };
    expect(added.mcp.servers.find((s) => s.id === "notes")?.status).toBe("needs_authorization");
    script("connect notes", "mcp__notes__connect");
    const events = await send("ada", "connect notes");
    const prompt = await events.until("capability_request");
    expect(prompt).toMatchObject({ kind: "mcp", value: "notes" });
    expect(String(prompt.url)).toMatch(/\/mcp\/connect\//);
    expect((await new Browser().open(String(prompt.url), { account: "ada-acct" })).status).toBe(
      200,
    );
    expect((await events.rest()).at(-1)).toMatchObject({
      text: expect.stringContaining("Connected to notes"),
    });

    // whoami is denied by [mcp.notes] tools: not offered; add_note asks first.
    script("add a note", "mcp__notes__add_note", { text: "buy bread" });
    const add = await send("ada", "add a note");
    const approval = await add.until("approval_request");
    expect(offered("add a note")).toEqual(
      expect.arrayContaining(["mcp__notes__add_note", "mcp__notes__count"]),
    );
    expect(offered("add a note")).not.toContain("mcp__notes__whoami");
    expect(approval).toMatchObject({ tool: "mcp__notes__add_note" });
    await api(`/api/v1/requests/${approval.requestId}/answer`, {
      method: "POST",
      body: JSON.stringify({ choice: "approve" }),
    });
    expect((await add.rest()).at(-1)).toMatchObject({ text: "RESULT: saved note 1 for ada-acct" });
  });

  it("a declined connect prompt tells the model the person must connect", async () => {
    await (await settingsOf("fa")).call("POST", "/mcp/notes");
    script("connect, maybe", "mcp__notes__connect");
    const events = await send("fa", "connect, maybe");
    const prompt = await events.until("capability_request");
    await api(`/api/v1/requests/${prompt.requestId}/answer`, {
      method: "POST",
      body: JSON.stringify({ choice: "denied" }),
    });
    expect((await events.rest()).at(-1)).toMatchObject({
      text: expect.stringContaining("has not connected their notes account (they declined)"),
    });
  });

  it("progress reaches the turn's stream", async () => {
    script("count to three", "mcp__notes__count", { n: 3 });
    const seen = await (await send("ada", "count to three")).rest();
    const notices = seen.filter((e) => e.type === "notice").map((e) => e.text);
    expect(notices).toEqual(expect.arrayContaining(["notes · count 100%: at 3"]));
    expect(seen.at(-1)).toMatchObject({ text: "RESULT: counted to 3" });
  });

  it("a turn that ends cancels its call at the server", async () => {
    llm.when((r) => r.lastUserText === "wait for it", {
      toolCalls: [{ name: "mcp__notes__wait", input: {} }],
    });
    const events = await send("ada", "wait for it");
    await until(() => notes.waits.running === 1);
    const { sandboxes } = (await (await api("/api/v1/sandboxes")).json()) as {
      sandboxes: { id: string; userId?: string; key?: { userId: string } }[];
    };
    for (const s of sandboxes) await api(`/api/v1/sandboxes/${s.id}/stop`, { method: "POST" });
    await events.rest();
    await until(() => notes.waits.cancelled === 1);
    expect(notes.waits.running).toBe(0);
  });

  it("a team server uses its static credential from the secret store; nobody connects", async () => {
    const settings = await settingsOf("bo");
    await settings.call("POST", "/mcp/team");
    script("team notes", "mcp__team__whoami");
    const seen = await (await send("bo", "team notes")).rest();
    expect(seen.at(-1)).toMatchObject({ text: "RESULT: you are team" });
    const view = (await (await settings.call("GET", "/state")).json()) as { mcp: McpView };
    expect(view.mcp.servers.find((s) => s.id === "team")?.status).toBe("shared");
  });

  it("a legacy HTTP+SSE server is reached through the fallback", async () => {
    const settings = await settingsOf("di");
    await settings.call("POST", "/mcp/legacy");
    script("old server", "mcp__legacy__whoami");
    const seen = await (await send("di", "old server")).rest();
    expect(seen.at(-1)).toMatchObject({ text: "RESULT: you are anonymous" });
  });

  it("the browser routes refuse forged, unknown and oversized requests", async () => {
    const forged = await fetch(`${gw.url}/mcp/callback?state=forged-state&code=stolen-code`);
    expect(forged.status).toBe(400);
    expect(await forged.text()).toContain("unknown or has expired");
    expect((await fetch(`${gw.url}/mcp/connect/made-up-code`)).status).toBe(410);
    const settings = await settingsOf("ed");
    const { url } = (await (await settings.call("POST", "/mcp/notes/connect")).json()) as {
      url: string;
    };
    const huge = await fetch(url, { method: "POST", body: "x".repeat(100_000) });
    expect(huge.status).toBe(413);
    // The refused request left the link unused: the person's own browser still gets in.
    const browser = new Browser();
    const start = await browser.fetch(url, "POST");
    expect(start.status).toBe(303);
    // A sign-in the person refuses at the provider connects nothing.
    const state = new URL(start.headers.get("location")!).searchParams.get("state")!;
    const refused = await browser.fetch(
      `${gw.url}/mcp/callback?state=${state}&error=access_denied`,
    );
    expect(refused.status).toBe(400);
    const view = (await (await settings.call("GET", "/state")).json()) as { mcp: McpView };
    expect(view.mcp.servers.find((s) => s.id === "notes")?.status).toBe("needs_authorization");
  });

  it("metadata pointing at a private address is refused (SSRF)", async () => {
    const settings = await settingsOf("cy");
    const res = await settings.call("POST", "/mcp/evil/connect");
    const { url } = (await res.json()) as { url: string };
    const page = await new Browser().open(url, { account: "cy-acct" });
    expect(page.status).toBe(502);
    expect(await page.text()).toContain("169.254.169.254");
    expect(auth.issuedTokens.length).toBeGreaterThan(0);
  });

  it("the settings page lists, disconnects (revoking the tokens) and connects again", async () => {
    const settings = await settingsOf("ada");
    const view = (await (await settings.call("GET", "/state")).json()) as { mcp: McpView };
    expect(view.mcp.servers.find((s) => s.id === "notes")?.status).toBe("connected");
    const revocations = auth.revocations;
    const after = (await (await settings.call("POST", "/mcp/notes/disconnect")).json()) as {
      mcp: McpView;
    };
    expect(after.mcp.servers.find((s) => s.id === "notes")?.status).toBe("needs_authorization");
    expect(auth.revocations).toBeGreaterThan(revocations);
    // Connect again from the page: a link, the sign-in, connected.
    const { url } = (await (await settings.call("POST", "/mcp/notes/connect")).json()) as {
      url: string;
    };
    const browser = new Browser();
    expect((await browser.open(url, { account: "ada-acct" })).status).toBe(200);
    const again = (await (await settings.call("GET", "/state")).json()) as { mcp: McpView };
    expect(again.mcp.servers.find((s) => s.id === "notes")?.status).toBe("connected");
    // The authorization request: PKCE S256 and the resource indicator (RFC 8707) naming the server.
    const authorize = new URL(
      browser.visited.find((v) => v.startsWith(`GET ${auth.issuer}/auth?`))!.slice(4),
    );
    expect(authorize.searchParams.get("code_challenge_method")).toBe("S256");
    expect(authorize.searchParams.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(authorize.searchParams.get("resource")).toBe(notes.url);
    expect(authorize.searchParams.get("redirect_uri")).toBe(`${gw.url}/mcp/callback`);
    // The callback replayed — same browser, same state and code — completes nothing again.
    const callback = browser.visited.find((v) => v.startsWith(`GET ${gw.url}/mcp/callback?`));
    expect(callback).toBeDefined();
    const issued = auth.issuedTokens.length;
    const replayed = await browser.fetch(callback!.slice(4));
    expect(replayed.status).toBe(400);
    expect(await replayed.text()).toContain("unknown or has expired");
    expect(auth.issuedTokens.length).toBe(issued);
  });

  it("a client id and secret from config are used instead of dynamic registration", async () => {
    const settings = await settingsOf("gus");
    await settings.call("GET", "/state");
    const registrations = auth.registrations;
    const { url } = (await (await settings.call("POST", "/mcp/preset/connect")).json()) as {
      url: string;
    };
    expect((await new Browser().open(url, { account: "gus-acct" })).status).toBe(200);
    const view = (await (await settings.call("GET", "/state")).json()) as { mcp: McpView };
    expect(view.mcp.servers.find((s) => s.id === "preset")?.status).toBe("connected");
    expect(auth.registrations).toBe(registrations);
    expect(auth.tokenClients.at(-1)).toBe("lobu-preset");
  });

  it("viewing the settings page and running a turn register nothing; one client serves everyone", async () => {
    const before = auth.registrations;
    const settings = await settingsOf("reg-a");
    await settings.call("POST", "/mcp/notes");
    await settings.call("GET", "/state");
    llm.when((r) => r.lastUserText === "just chatting", { text: "ok" });
    await (await send("reg-a", "just chatting")).rest();
    expect(offered("just chatting")).toEqual(
      expect.arrayContaining([expect.stringMatching(/^mcp__notes__connect/)]),
    );
    expect(auth.registrations).toBe(before);
    // Connecting registers the gateway once at most (none if an earlier connect did)...
    await connectFromSettings("reg-a");
    const registered = auth.registrations;
    expect(registered).toBeLessThanOrEqual(before + 1);
    // ...and another person's connect reuses that client.
    await connectFromSettings("reg-b");
    expect(auth.registrations).toBe(registered);
    expect(auth.tokenClients.at(-1)).toBe(auth.tokenClients.at(-2));
  });

  it("two connect flows at once in one browser each complete", async () => {
    const settings = await settingsOf("tabs");
    await settings.call("POST", "/mcp/notes");
    const link = async () =>
      ((await (await settings.call("POST", "/mcp/notes/connect")).json()) as { url: string }).url;
    const browser = new Browser();
    // Both tabs are sent to the provider before either comes back.
    const first = await browser.fetch(await link(), "POST");
    const second = await browser.fetch(await link(), "POST");
    expect([first.status, second.status]).toEqual([303, 303]);
    for (const start of [first, second]) {
      const done = await browser.open(start.headers.get("location")!, { account: "tabs-acct" });
      expect(done.status).toBe(200);
      expect(await done.text()).toContain("Connected to notes");
    }
  });

  it("a callback naming another authorization server (RFC 9207 iss) connects nothing", async () => {
    const settings = await settingsOf("mixup");
    await settings.call("POST", "/mcp/notes");
    const issued = auth.issuedTokens.length;
    for (const tamper of [
      (u: URL) => u.searchParams.set("iss", "https://attacker.example"),
      // The server advertises authorization_response_iss_parameter_supported: iss is required.
      (u: URL) => u.searchParams.delete("iss"),
    ]) {
      const { url } = (await (await settings.call("POST", "/mcp/notes/connect")).json()) as {
        url: string;
      };
      const browser = new Browser();
      const back = await browser.open(url, {
        account: "mixup-acct",
        stopBefore: `${gw.url}/mcp/callback`,
      });
      const callback = new URL(back.headers.get("location")!);
      expect(callback.searchParams.get("iss")).toBe(auth.issuer);
      tamper(callback);
      const refused = await browser.fetch(callback.href);
      expect(refused.status).toBe(400);
      expect(await refused.text()).toContain("another authorization server");
    }
    expect(auth.issuedTokens.length).toBe(issued);
    const view = (await (await settings.call("GET", "/state")).json()) as { mcp: McpView };
    expect(view.mcp.servers.find((s) => s.id === "notes")?.status).toBe("needs_authorization");
  });

  it("audits each remote call and connection: who, server, tool, outcome; never input, result or token", async () => {
    const res = await api("/api/v1/audit?limit=500");
    const { records } = (await res.json()) as {
      records: { action: string; actor: string; details?: Record<string, unknown> }[];
    };
    const calls = records
      .filter((r) => r.action === "mcp.call")
      .map((r) => `${r.actor} ${r.details?.server} ${r.details?.tool} ${r.details?.outcome}`);
    expect(calls).toEqual(
      expect.arrayContaining([
        "api::ada notes connect connected",
        "api::ada notes add_note ok",
        "api::fa notes connect needs_authorization",
      ]),
    );
    expect(records.some((r) => r.action === "mcp.connected" && r.actor === "api::ada")).toBe(true);
    for (const r of records.filter((r) => r.action.startsWith("mcp."))) {
      const text = JSON.stringify(r);
      expect(text).not.toContain("buy bread");
      expect(text).not.toContain("saved note");
      for (const t of auth.issuedTokens) expect(text).not.toContain(t);
    }
  });

  it("erasing the person revokes their connection at the server and leaves no token behind", async () => {
    const revocations = auth.revocations;
    const userKey = "api::ada";
    const exported = await (
      await api(`/api/v1/admin/people/${encodeURIComponent(userKey)}/export`)
    ).text();
    expect(JSON.parse(exported).data.mcp).toEqual({ connected: ["notes"] });
    expect(exported).not.toMatch(/access_token|refresh_token/);
    const res = await api(`/api/v1/admin/people/${encodeURIComponent(userKey)}`, {
      method: "DELETE",
    });
    expect(res.status).toBe(200);
    expect(auth.revocations).toBeGreaterThan(revocations);
    const left = await (
      await api(`/api/v1/admin/people/${encodeURIComponent(userKey)}/export`)
    ).text();
    expect(JSON.parse(left).data.mcp).toEqual({ connected: [] });
    expect(left).not.toContain("person:");
  });
});
