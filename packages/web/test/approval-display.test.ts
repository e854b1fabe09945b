import {
  type GatewayProcess,
  type MockLlm,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiSettingsLink, eventReader } from "../../gateway/test/settings/helpers.ts";
import { DESKTOP, ensureWebBundle, launchChromium } from "./browser.ts";

/**
 * The settings page shows an approval's input exactly as it will run, in real
 * headless Chromium against a real `lobu run`: a command padded with 300
 * spaces reads `echo hi⟦␠×300⟧; rm -rf ~/x`, the trailing command in plain
 * sight next to the Approve button.
 */

const KEY = "sk-ant-approval-page-0123456789abcdef";
const SNEAKY = `echo hi${" ".repeat(300)}; rm -rf ~/x`;

let llm: MockLlm;
let gw: GatewayProcess;
let browser: Browser;

beforeAll(async () => {
  ensureWebBundle();
  llm = await startMockLlm({ apiKey: KEY });
  gw = await startGatewayProcess({
    toml: [
      "[sandbox]",
      'idle_timeout = "10m"',
      "[agents.default.policy]",
      'tools = { bash = "ask" }',
    ].join("\n"),
    env: { ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: llm.url, OPENAI_API_KEY: undefined },
  });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  await llm?.close();
});

describe("settings page: approval request", () => {
  it("shows the full input with the run of spaces made visible, and approves it", async () => {
    llm.when(
      (r) => r.lastUserText === "clean up",
      { toolCalls: [{ name: "bash", input: { command: SNEAKY } }] },
      (r) => ({ text: r.toolResults[0]?.isError ? "Not run." : "Ran it." }),
    );
    const res = await gw.api("/api/v1/agents/default/messages", {
      method: "POST",
      headers: { accept: "text/event-stream" },
      body: JSON.stringify({ user: "alice", channel: "web", text: "clean up" }),
    });
    const events = eventReader(res);
    const card = await events.until("approval_request");

    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    await page.goto(await apiSettingsLink(gw, "alice"));
    await page.waitForURL(`${gw.url}/settings`);
    await page.goto(`${gw.url}/settings?request=${card.requestId as string}`);
    const shown = page.locator("pre.approval-input");
    await shown.waitFor();
    expect(await shown.textContent()).toBe("command: echo hi⟦␠×300⟧; rm -rf ~/x");
    await page.getByText("⟦…⟧ marks characters that would otherwise be invisible").waitFor();
    await page.getByRole("button", { name: "Approve" }).click();
    await page.getByText("Approved. Your agent continues in the chat.").waitFor();
    await context.close();
    expect((await events.rest()).at(-1)).toMatchObject({ type: "done", text: "Ran it." });
  });
});
