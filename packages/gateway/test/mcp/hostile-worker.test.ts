import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
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
 * The cross-person token reuse of other MCP gateways, tried by a worker that
 * does not play along: in a channel whose sandbox Alice and Bob share, the
 * worker (a hostile fixture speaking the control protocol itself) calls
 * Alice's MCP tools during Bob's turn, replays Alice's turn id, and calls
 * after Alice's turn ended. The gateway answers by the turn's sender alone.
 */

const KEY = "sk-ant-mcp-hostile-0123456789abcdef";
const SIGNING_SECRET = "slack-signing-secret-mcp-hostile";
const BOT_TOKEN = "xoxb-3333-4444-hostile";
const RAW_WORKER = resolve(import.meta.dirname, "../runtime/fixtures/raw-worker.ts");

let llm: MockLlm;
let slack: SlackEmulator;
let auth: AuthServer;
let mcp: McpServerEmulator;
let gw: Gateway;
let dataDir: string;
let channel: string;

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: KEY });
  slack = await startSlackEmulator({
    signingSecret: SIGNING_SECRET,
    botToken: BOT_TOKEN,
    botName: "lobu",
    subscriptions: ["app_mention"],
  });
  ({ auth, mcp } = await startOAuthMcp());
  dataDir = mkdtempSync(join(tmpdir(), "lobu-mcp-hostile-"));
  gw = await startGateway({
    config: LobuConfig.parse({
      sandbox: { driver: "host", allow_unsandboxed: true, idle_timeout: "10m" },
      agents: {
        default: {
          group_routing: "per-channel",
          skills: ["notes"],
          policy: { request_timeout: "2m" },
        },
      },
      skills: { notes: { mcp: ["notes"] } },
      mcp: { notes: { url: mcp.url, policy: "allow" } },
      platforms: { slack: { stream_interval: "200ms" } },
    }),
    dataDir,
    port: 0,
    env: {
      ...llmEnv(llm, KEY),
      ...slackEnv(slack),
    },
    log: createLogger("test", { level: "silent" }),
    worker: { entry: RAW_WORKER },
  });
  slack.eventsUrl = `${gw.url}/slack/events`;
  channel = slack.addChannel({ name: "shared" }).id;
});

afterAll(async () => {
  await gw?.close();
  await slack?.close();
  await mcp?.close();
  await auth?.close();
  await llm?.close();
  if (dataDir) removeDataDir(dataDir);
});

interface Call {
  tool: string;
  input: unknown;
  turnId?: string;
}
/** One answer of the gateway, as the thread shows it (Slack's text drops escapes: read, not parsed). */
interface Answer {
  ok: boolean;
  code?: string;
  output?: string;
}

function answers(text: string): Answer[] {
  return text
    .split('{"t":"gateway_tool_result"')
    .slice(1)
    .map((part) => {
      const ok = /"ok":(true|false)/.exec(part)?.[1] === "true";
      const code = /"error":\{"code":"([a-z_]+)"/.exec(part)?.[1];
      const output = /"output":"(.*?)"\}/.exec(part)?.[1];
      return { ok, ...(code ? { code } : {}), ...(output ? { output } : {}) };
    });
}

/** `user` mentions the bot with a script for the hostile worker; its answers once the turn is done. */
async function run(
  user: string,
  script: { calls?: Call[]; after?: Call[] },
  during?: () => Promise<void>,
): Promise<{ results: Answer[]; late: Answer[] }> {
  const sent = await slack.mention({ user, channel, text: JSON.stringify(script) });
  await during?.();
  const reply = await slack.waitFor(
    () => slack.messages(channel, { threadTs: sent.ts }).find((m) => m.text.includes('"results"')),
    { ...WAIT, description: "the worker's answers" },
  );
  const [results = "", late = ""] = reply.text.split('"late":');
  return { results: answers(results), late: answers(late) };
}

describe("a hostile worker in a shared channel sandbox", () => {
  it("cannot use Alice's connection in Bob's turn", async () => {
    // Alice connects her account (her turn waits until she has).
    const before = slack.ephemerals.length;
    const alice = await run(
      "UALICE",
      { calls: [{ tool: "mcp__notes__connect", input: {} }] },
      async () => {
        const eph = await slack.waitFor(
          () =>
            slack.ephemerals
              .slice(before)
              .find((e) => e.user === "UALICE" && e.text.includes("/mcp/connect/")),
          { ...WAIT, description: "Alice's connect link" },
        );
        const link = /https?:\/\/\S+\/mcp\/connect\/[A-Za-z0-9_-]+/.exec(eph.text)![0];
        expect((await new Browser().open(link, { account: "alice-acct" })).status).toBe(200);
      },
    );
    expect(alice.results[0]).toMatchObject({
      ok: true,
      output: expect.stringContaining("Connected to notes"),
    });

    // Alice's turn works with her tools; a call sent after it ended must not run later.
    const aliceTurn = await run("UALICE", {
      calls: [{ tool: "mcp__notes__add_note", input: { text: "alice's" } }],
      after: [{ tool: "mcp__notes__add_note", input: { text: "late, as Alice" } }],
    });
    expect(aliceTurn.results[0]).toMatchObject({ ok: true, output: "saved note 1 for alice-acct" });

    // Bob's turn, the same sandbox: Alice's tools are not his, however they are called.
    const calls = mcp.calls.length;
    const bob = await run("UBOB", {
      calls: [
        { tool: "mcp__notes__add_note", input: { text: "as Bob" } },
        { tool: "mcp__notes__whoami", input: {} },
      ],
    });
    expect(bob.late).toEqual([{ ok: false, code: "not_in_turn" }]);
    expect(bob.results).toEqual([
      { ok: false, code: "unknown_tool" },
      { ok: false, code: "unknown_tool" },
    ]);
    expect(mcp.calls.slice(calls)).toEqual([]);
    expect(mcp.notes("alice-acct")).toEqual(["alice's"]);
  });
});
