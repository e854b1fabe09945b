import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, LobuConfig } from "@lobu/core";
import { type Gateway, startGateway } from "@lobu/gateway";
import {
  type MockLlm,
  removeDataDir,
  type SlackEmulator,
  startMockLlm,
  startSlackEmulator,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { llmEnv, slackEnv } from "../platforms/helpers.ts";
import { writeSkill } from "../skills/fixtures.ts";
import { WAIT } from "./rig.ts";
import { PROBE_SERVER } from "./stdio-fixtures.ts";

/**
 * A stdio MCP server through Slack: two people in one channel mention the
 * agent, whose skill brings a server it runs inside each person's own
 * sandbox (the process tier); each one's server keeps its own state, and the
 * answers arrive in each thread.
 */

const KEY = "sk-ant-mcp-stdio-slack-0123456789abcdef";
const SIGNING_SECRET = "slack-signing-secret-mcp-stdio";
const BOT_TOKEN = "xoxb-5555-6666-stdio";

let llm: MockLlm;
let slack: SlackEmulator;
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
  dataDir = mkdtempSync(join(tmpdir(), "lobu-mcp-stdio-slack-"));
  writeSkill(join(dataDir, "skills", "probe-kit"), "probe-kit", {
    metadata: { "lobu.mcp": "probe" },
    files: { "server.mjs": PROBE_SERVER },
  });
  gw = await startGateway({
    config: LobuConfig.parse({
      sandbox: { driver: "process", idle_timeout: "10m" },
      agents: { default: { skills: ["probe-kit"] } },
      mcp: {
        probe: {
          command: process.execPath,
          args: ["/skills/probe-kit/server.mjs"],
          policy: "allow",
        },
      },
      platforms: { slack: { stream_interval: "200ms" } },
    }),
    configPath: join(dataDir, "lobu.toml"),
    dataDir,
    port: 0,
    env: {
      ...llmEnv(llm, KEY),
      ...slackEnv(slack),
    },
    log: createLogger("test", { level: "silent" }),
  });
  slack.eventsUrl = `${gw.url}/slack/events`;
  channel = slack.addChannel({ name: "probes" }).id;
});

afterAll(async () => {
  await gw?.close();
  await slack?.close();
  await llm?.close();
  if (dataDir) removeDataDir(dataDir);
});

/** Mention the agent as `user`; the model calls `tool` and repeats its result in the thread. */
async function ask(user: string, text: string, tool: string, input: Record<string, unknown> = {}) {
  llm.when(
    (r) => r.lastUserText === text,
    { toolCalls: [{ name: tool, input }] },
    (r) => ({ text: `RESULT: ${r.toolResults[0]?.content.slice(0, 300)}` }),
  );
  const sent = await slack.mention({ user, channel, text });
  expect(sent.status).toBe(200);
  const found = await slack.waitFor(
    () =>
      slack
        .messages(channel, { threadTs: sent.ts })
        .find((m) => JSON.stringify(m.blocks ?? m.text).includes("RESULT: ")),
    { ...WAIT, description: `the reply to "${text}"` },
  );
  return JSON.stringify(found.blocks ?? found.text);
}

describe("a stdio MCP server through Slack", () => {
  it("runs in each person's own sandbox, with its own state", async () => {
    expect(
      await ask("UALICE", "remember plum", "mcp__probe__remember", { word: "plum" }),
    ).toContain("remembered plum");
    expect(await ask("UBOB", "what do you recall, bob", "mcp__probe__recall")).toContain(
      "memory: []",
    );
    expect(await ask("UALICE", "what do you recall, alice", "mcp__probe__recall")).toContain(
      "memory: [plum]",
    );
  });
});
