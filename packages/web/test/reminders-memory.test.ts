import {
  collectEvents,
  type GatewayProcess,
  type MockLlm,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DESKTOP, ensureWebBundle, launchChromium } from "./browser.ts";

/**
 * The settings page's Schedules and Memory sections in real headless
 * Chromium, against a real `lobu run` whose agent (the mock LLM scripting
 * its tool calls) set a reminder and remembered a fact for an API person:
 * the person sees both, deletes the memory and cancels the reminder.
 */

let llm: MockLlm;
let gw: GatewayProcess;
let browser: Browser;

async function say(text: string) {
  const res = await gw.api("/api/v1/agents/default/messages", {
    method: "POST",
    headers: { accept: "text/event-stream" },
    body: JSON.stringify({ user: "erin", channel: "web", text }),
  });
  return collectEvents(res);
}

beforeAll(async () => {
  ensureWebBundle();
  llm = await startMockLlm();
  gw = await startGatewayProcess({
    toml: '[sandbox]\nidle_timeout = "10m"\n',
    env: { ANTHROPIC_API_KEY: "sk-ant-reminders-page", ANTHROPIC_BASE_URL: llm.url },
  });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  await llm?.close();
});

describe("schedules and memory on the settings page", () => {
  it("shows the person's reminder and memory; they delete the memory and cancel the reminder", async () => {
    llm.when((r) => r.lastUserText === "set things up", {
      toolCalls: [
        { name: "remember", input: { text: "Erin prefers short answers" } },
        {
          name: "schedule",
          input: {
            text: "Ask Erin about the quarterly report",
            cron: "0 9 * * 1",
            timezone: "Europe/Paris",
          },
        },
      ],
    });
    llm.when((r) => r.lastUserText === "set things up", { text: "Done." });
    await say("set things up");

    const res = await gw.api("/api/v1/settings-links", {
      method: "POST",
      body: JSON.stringify({ user: "erin", userName: "Erin" }),
    });
    const { url } = (await res.json()) as { url: string };
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForURL(`${gw.url}/settings`);
    await page.getByText("Erin prefers short answers").waitFor();
    await page.getByText("Ask Erin about the quarterly report").waitFor();
    await page.getByText("0 9 * * 1").waitFor();

    await page.getByRole("button", { name: "Delete memory Erin prefers short answers" }).click();
    await page.getByText("Memory deleted.").waitFor();
    await page
      .getByRole("button", { name: "Cancel schedule Ask Erin about the quarterly report" })
      .click();
    await page.getByText("Schedule cancelled.").waitFor();
    expect(await page.getByText("Erin prefers short answers").count()).toBe(0);

    // Gone for the agent as well.
    const schedules = await gw.api("/api/v1/agents/default/schedules?user=erin");
    expect(((await schedules.json()) as { schedules: unknown[] }).schedules).toEqual([]);
    llm.when((r) => r.lastUserText === "what do you know", {
      toolCalls: [{ name: "recall", input: { query: "" } }],
    });
    llm.when((r) => r.lastUserText === "what do you know", { text: "Nothing." });
    await say("what do you know");
    const round = llm.requests.filter((r) => r.lastUserText === "what do you know").at(-1);
    expect(round?.toolResults[0]?.content).toBe("Nothing remembered matches.");
    await context.close();
  });
});
