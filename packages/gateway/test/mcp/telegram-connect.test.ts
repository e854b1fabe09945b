import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, LobuConfig } from "@lobu/core";
import { type Gateway, startGateway } from "@lobu/gateway";
import {
  type MockLlm,
  removeDataDir,
  startMockLlm,
  startTelegramEmulator,
  type TelegramEmulator,
} from "@lobu/testkit";
import { type AuthServer, Browser, type McpServerEmulator } from "@lobu/testkit/mcp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { llmEnv } from "../platforms/helpers.ts";
import { startOAuthMcp, WAIT } from "./rig.ts";

/**
 * The connect prompt on Telegram: in the person's private chat the card
 * carries a Connect button (a URL button to the connect link); after signing
 * in, the same turn goes on.
 */

const KEY = "sk-ant-mcp-telegram-0123456789abcdef";
const TG_TOKEN = "123456:telegram-mcp-token";
const ADA = { id: 4242, first_name: "Ada", username: "ada" };

let llm: MockLlm;
let tg: TelegramEmulator;
let auth: AuthServer;
let mcp: McpServerEmulator;
let gw: Gateway;
let dataDir: string;

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: KEY });
  tg = await startTelegramEmulator({
    botToken: TG_TOKEN,
    botUsername: "lobu_mcp_bot",
    rateLimits: false,
  });
  ({ auth, mcp } = await startOAuthMcp());
  dataDir = mkdtempSync(join(tmpdir(), "lobu-mcp-tg-"));
  gw = await startGateway({
    config: LobuConfig.parse({
      sandbox: { idle_timeout: "10m" },
      agents: { default: { skills: ["notes"], policy: { request_timeout: "2m" } } },
      skills: { notes: { mcp: ["notes"] } },
      mcp: { notes: { url: mcp.url, policy: "allow" } },
      platforms: { telegram: { mode: "polling", stream_interval: "200ms" } },
    }),
    dataDir,
    port: 0,
    env: {
      ...llmEnv(llm, KEY),
      TELEGRAM_BOT_TOKEN: TG_TOKEN,
      TELEGRAM_API_ROOT: tg.url,
    },
    log: createLogger("test", { level: "silent" }),
  });
});

afterAll(async () => {
  await gw?.close();
  await tg?.close();
  await mcp?.close();
  await auth?.close();
  await llm?.close();
  if (dataDir) removeDataDir(dataDir);
});

describe("MCP connect prompt on Telegram", () => {
  it("a Connect button in the private chat; the turn continues once connected", async () => {
    llm.when(
      (r) => r.lastUserText === "connect my notes",
      { toolCalls: [{ name: "mcp__notes__connect", input: {} }] },
      (r) => ({ text: `RESULT: ${r.toolResults[0]?.content.slice(0, 40)}` }),
    );
    tg.userSends({ chat: { id: ADA.id, type: "private" }, from: ADA, text: "connect my notes" });
    const button = await tg.waitFor(
      () =>
        tg
          .messages(ADA.id)
          .flatMap((m) => m.replyMarkup?.inline_keyboard.flat() ?? [])
          .find((b) => b.text === "Connect notes" && b.url?.includes("/mcp/connect/")),
      { ...WAIT, description: "the Connect button" },
    );
    const page = await new Browser().open(button.url!, { account: "ada-acct" });
    expect(page.status).toBe(200);
    await tg.waitFor(
      () => tg.messages(ADA.id).find((m) => m.text?.includes("RESULT: Connected to notes")),
      { ...WAIT, description: "the turn's answer" },
    );
  });
});
