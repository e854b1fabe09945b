import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createLogger, LobuConfig } from "@lobu/core";
import { type Gateway, startGateway } from "@lobu/gateway";
import {
  type MockLlm,
  removeDataDir,
  type SlackEmulator,
  startMockLlm,
  startSlackEmulator,
} from "@lobu/testkit";
import { type AuthServer, Browser, type McpServerEmulator } from "@lobu/testkit/mcp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { llmEnv, slackEnv } from "../platforms/helpers.ts";
import { startOAuthMcp, WAIT } from "./rig.ts";

/**
 * The MCP gateway end to end, through the Slack emulator: a real OAuth
 * authorization server (oidc-provider: registration, PKCE, resource
 * indicators, refresh, revocation) in front of an MCP server of the
 * official SDK, the real pi runtime in real sandboxes, the mock LLM
 * scripting tool calls. A channel shared by Alice and Bob (one sandbox per
 * channel): each connects their own account, and every call is made with the
 * token of the person whose turn it is.
 */

const KEY = "sk-ant-mcp-oauth-0123456789abcdef";
const SIGNING_SECRET = "slack-signing-secret-mcp";
const BOT_TOKEN = "xoxb-1111-2222-mcp";

let llm: MockLlm;
let slack: SlackEmulator;
let auth: AuthServer;
let mcp: McpServerEmulator;
let gw: Gateway;
let dataDir: string;
const logLines: string[] = [];
let channel: string;

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: KEY });
  slack = await startSlackEmulator({
    signingSecret: SIGNING_SECRET,
    botToken: BOT_TOKEN,
    botName: "lobu",
    subscriptions: ["app_mention", "message.im", "message.channels"],
  });
  ({ auth, mcp } = await startOAuthMcp());
  dataDir = mkdtempSync(join(tmpdir(), "lobu-mcp-oauth-"));
  const logs = new Writable({
    write(chunk, _enc, done) {
      logLines.push(String(chunk));
      done();
    },
  });
  gw = await startGateway({
    config: LobuConfig.parse({
      sandbox: { idle_timeout: "10m" },
      agents: {
        default: {
          group_routing: "per-channel",
          skills: ["notes"],
          policy: { request_timeout: "2m" },
        },
      },
      skills: { notes: { description: "Take notes.", mcp: ["notes"] } },
      mcp: { notes: { url: mcp.url, description: "Team notes", policy: "allow" } },
      platforms: { slack: { stream_interval: "200ms" } },
    }),
    dataDir,
    port: 0,
    env: {
      ...llmEnv(llm, KEY),
      ...slackEnv(slack),
    },
    log: createLogger("test", { level: "debug", destination: logs }),
  });
  slack.eventsUrl = `${gw.url}/slack/events`;
  channel = slack.addChannel({ name: "notes" }).id;
});

afterAll(async () => {
  await gw?.close();
  await slack?.close();
  await mcp?.close();
  await auth?.close();
  await llm?.close();
  if (dataDir) removeDataDir(dataDir);
});

/** The tools the model was offered for `text`. */
function offered(text: string): string[] {
  const round = llm.requests.filter((r) => r.lastUserText === text).at(0);
  return ((round?.body.tools ?? []) as { name: string }[]).map((t) => t.name);
}

async function mention(user: string, text: string, where = channel): Promise<string> {
  const sent = await slack.mention({ user, channel: where, text });
  expect(sent.status).toBe(200);
  return sent.ts;
}

function reply(ts: string, text: string) {
  return slack.waitFor(
    () =>
      slack
        .messages(channel, { threadTs: ts })
        .find((m) => JSON.stringify(m.blocks ?? m.text).includes(text)),
    { ...WAIT, description: `the reply "${text}"` },
  );
}

/** The connect link sent to `user` alone (ephemeral), once it is there. */
async function connectLink(user: string, after: number): Promise<string> {
  const eph = await slack.waitFor(
    () =>
      slack.ephemerals
        .slice(after)
        .find((e) => e.user === user && e.text.includes("/mcp/connect/")),
    { ...WAIT, description: `a connect link for ${user}` },
  );
  const url = /https?:\/\/\S+\/mcp\/connect\/[A-Za-z0-9_-]+/.exec(eph.text)?.[0];
  if (!url) throw new Error(`no link in ${eph.text}`);
  return url;
}

/** Script the model: for `text`, call `tool` with `input`, then reply with what it got. */
function script(text: string, tool: string, input: Record<string, unknown> = {}): void {
  llm.when(
    (r) => r.lastUserText === text,
    { toolCalls: [{ name: tool, input }] },
    (r) => ({ text: `RESULT: ${r.toolResults[0]?.content.slice(0, 300)}` }),
  );
}

/** Connect `user`'s account as `account` from a thread: the prompt, the link, the sign-in. */
async function connectFromThread(user: string, account: string, text: string): Promise<string> {
  const before = slack.ephemerals.length;
  script(text, "mcp__notes__connect");
  const ts = await mention(user, text);
  const link = await connectLink(user, before);
  const page = await new Browser().open(link, { account });
  expect(page.status).toBe(200);
  expect(await page.text()).toContain("Connected to notes");
  await reply(ts, "RESULT: Connected to notes");
  return ts;
}

describe("MCP with per-person OAuth, through Slack", () => {
  it("one person's connection is never used for another's turn in a shared channel", async () => {
    await connectFromThread("UALICE", "alice-acct", "connect my notes");
    // Bob, in the same channel (the same sandbox), has not connected: his turn is
    // offered the connect tool only, never Alice's connection's tools.
    script("bob adds eggs", "mcp__notes__add_note", { text: "eggs" });
    const callsBefore = mcp.calls.length;
    const ts = await mention("UBOB", "bob adds eggs");
    await reply(ts, "RESULT:");
    expect(offered("bob adds eggs")).toContain("mcp__notes__connect");
    expect(offered("bob adds eggs")).not.toContain("mcp__notes__add_note");
    expect(mcp.calls.slice(callsBefore)).toEqual([]);
    expect(mcp.notes("alice-acct")).toEqual([]);
    // Once Bob connects his own account, his calls are his.
    await connectFromThread("UBOB", "bob-acct", "connect bob's notes");
    script("bob adds milk", "mcp__notes__add_note", { text: "milk" });
    await reply(await mention("UBOB", "bob adds milk"), "saved note 1 for bob-acct");
    script("alice adds tea", "mcp__notes__add_note", { text: "tea" });
    await reply(await mention("UALICE", "alice adds tea"), "saved note 1 for alice-acct");
    expect(mcp.notes("bob-acct")).toEqual(["milk"]);
    expect(mcp.notes("alice-acct")).toEqual(["tea"]);
    expect(mcp.calls.slice(callsBefore).map((c) => `${c.account}:${c.tool}`)).toEqual([
      "bob-acct:add_note",
      "alice-acct:add_note",
    ]);
  });

  it("the connect prompt: a card in the channel without the link, the link to the person alone", async () => {
    const cards = slack
      .messages(channel)
      .concat(slack.messages(channel, {}))
      .filter((m) => JSON.stringify(m.blocks ?? "").includes("MCP server"));
    for (const card of cards) expect(JSON.stringify(card.blocks)).not.toContain("/mcp/connect/");
    const ephemeral = slack.ephemerals.find((e) => e.text.includes("/mcp/connect/"));
    expect(JSON.stringify(ephemeral?.blocks)).toContain("Connect notes");
  });

  it("a used connect link is refused, and so is a callback from another browser", async () => {
    const before = slack.ephemerals.length;
    llm.when(
      (r) => r.lastUserText === "carol connects",
      {
        toolCalls: [{ name: "mcp__notes__connect", input: {} }],
      },
      { text: "done" },
    );
    // Her own channel: her turn waits for her there while the others go on.
    await mention("UCAROL", "carol connects", slack.addChannel({ name: "carol" }).id);
    const link = await connectLink("UCAROL", before);
    // Mallory's browser opens Carol's link first and gets to the sign-in page...
    const mallory = new Browser();
    const start = await mallory.fetch(link, "POST");
    expect(start.status).toBe(303);
    const authorize = start.headers.get("location")!;
    // ...the link is used up for anyone else...
    const again = await new Browser().open(link, { account: "carol-acct" });
    expect(again.status).toBe(410);
    // ...and a callback with Carol's state from a browser without the flow cookie completes nothing.
    const other = new Browser();
    const signIn = await other.open(authorize, { account: "mallory-acct" });
    expect(signIn.status).toBe(403);
    expect(await signIn.text()).toContain("another browser");
  });

  it("an expired access token is refreshed without asking", async () => {
    await auth.expireAccessTokens();
    script("alice lists", "mcp__notes__list_notes");
    await reply(await mention("UALICE", "alice lists"), "RESULT: tea");
  });

  it("a revoked grant asks to connect again, and the same turn continues once connected", async () => {
    await auth.revokeAccount("alice-acct");
    const before = slack.ephemerals.length;
    script("alice lists again", "mcp__notes__list_notes");
    const ts = await mention("UALICE", "alice lists again");
    const link = await connectLink("UALICE", before);
    const page = await new Browser().open(link, { account: "alice-acct" });
    expect(page.status).toBe(200);
    await reply(ts, "RESULT: tea");
  });

  it("a server that changes its tools: the next turn has the new one", async () => {
    script("unlock it", "mcp__notes__unlock_extra");
    await reply(await mention("UALICE", "unlock it"), "RESULT: unlocked");
    script("use extra", "mcp__notes__extra");
    await reply(await mention("UALICE", "use extra"), "RESULT: extra ran");
    expect(offered("use extra")).toContain("mcp__notes__extra");
    expect(offered("unlock it")).not.toContain("mcp__notes__extra");
  });

  it("tokens reach neither the model, nor the sandbox, nor a log", async () => {
    const tokens = auth.issuedTokens.filter((t) => t.length > 20);
    expect(tokens.length).toBeGreaterThan(3);
    const seen = [
      ...llm.requests.map((r) => JSON.stringify(r.body)),
      ...logLines,
      ...files(dataDir).map((f) => readFileSync(f).toString("latin1")),
      ...slack.messages(channel).map((m) => JSON.stringify(m)),
      ...slack.ephemerals.map((e) => JSON.stringify(e)),
    ].join("\n");
    for (const token of tokens) expect(seen).not.toContain(token);
    // Every call is audited: who, server, tool, outcome.
    const token = readFileSync(gw.summary.adminTokenFile, "utf8").trim();
    const res = await fetch(`${gw.url}/api/v1/audit?action=mcp.call&limit=100`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const { records: entries } = (await res.json()) as {
      records: { actor: string; details?: Record<string, unknown> }[];
    };
    const lines = entries.map(
      (a) => `${a.actor} ${a.details?.server} ${a.details?.tool} ${a.details?.outcome}`,
    );
    expect(lines).toContain(`slack:${slack.defaultTeamId}:UBOB notes add_note ok`);
    expect(lines).toContain(
      `slack:${slack.defaultTeamId}:UALICE notes list_notes needs_authorization`,
    );
    for (const e of entries)
      expect(Object.keys(e.details ?? {}).sort()).toEqual(["outcome", "server", "tool"]);
  });
});

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(path);
    } catch {
      continue;
    }
    if (st.isDirectory()) out.push(...files(path));
    else if (st.isFile() && st.size < 50_000_000) out.push(path);
  }
  return out;
}
