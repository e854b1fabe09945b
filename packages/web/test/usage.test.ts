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
 * The admin UI's Usage tab in real headless Chromium against a real `lobu run`:
 * cost estimates from `[prices]` ("no price" for models without one) and the
 * budget use of each person.
 */

let llm: MockLlm;
let gw: GatewayProcess;
let browser: Browser;

async function say(agent: string, user: string, text: string) {
  const res = await gw.api(`/api/v1/agents/${agent}/messages`, {
    method: "POST",
    headers: { accept: "text/event-stream" },
    body: JSON.stringify({ user, channel: "web", text }),
  });
  return collectEvents(res);
}

beforeAll(async () => {
  ensureWebBundle();
  llm = await startMockLlm();
  gw = await startGatewayProcess({
    toml: [
      "[budgets.per_user]",
      "tokens_per_day = 50",
      "",
      "[agents.default]",
      'name = "Assistant"',
      "[agents.local]",
      'name = "Local model"',
      'model = "unpriced-model"',
      "",
      '[prices."anthropic/claude-sonnet-4-5"]',
      "input = 3",
      "output = 15",
    ].join("\n"),
    env: {
      ANTHROPIC_API_KEY: "sk-ant-usage-tab",
      ANTHROPIC_BASE_URL: llm.url,
      OPENAI_API_KEY: undefined,
    },
  });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  await llm?.close();
});

describe("admin Usage tab", () => {
  it("shows estimated costs, 'no price' for unpriced models, and who has used up a budget", async () => {
    expect((await say("default", "alice", "hello")).at(-1)).toMatchObject({ type: "done" });
    expect((await say("default", "alice", "again")).at(-1)).toMatchObject({
      type: "error",
      code: "budget_exceeded",
    });
    expect((await say("local", "bob", "hi")).at(-1)).toMatchObject({ type: "done" });
    const report = (await (await gw.api("/api/v1/usage")).json()) as {
      totals: { userKey: string; costUsd: number | null }[];
    };
    const aliceCost = report.totals.find((t) => t.userKey === "api::alice")!.costUsd!;
    expect(aliceCost).toBeGreaterThan(0);

    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    await page.goto(`${gw.url}/admin`);
    await page.getByLabel("Admin API token").fill(gw.token);
    await page.getByLabel("Admin API token").press("Enter");
    await page.getByRole("tab", { name: "Sandboxes", selected: true }).waitFor();
    await page.getByRole("tab", { name: "Usage" }).click();

    const perPerson = page.getByRole("table").filter({ hasText: "Estimated cost" }).first();
    const alice = perPerson.locator("tr", { hasText: "api::alice" });
    // As the tab shows it: four decimals under a cent, two from there.
    const shown = aliceCost < 0.01 ? aliceCost.toFixed(4) : aliceCost.toFixed(2);
    await alice.getByRole("cell", { name: `$${shown}` }).waitFor();
    await perPerson
      .locator("tr", { hasText: "api::bob" })
      .getByRole("cell", { name: "no price" })
      .waitFor();
    await page.getByText("no price for anthropic/unpriced-model").waitFor();

    const budgets = page.getByRole("table").filter({ hasText: "Tokens today" });
    const aliceBudget = budgets.locator("tr", { hasText: "api::alice" });
    await aliceBudget.getByText("used up").waitFor();
    expect(await aliceBudget.getByRole("meter").first().getAttribute("aria-label")).toBe(
      "tokens today, default, api::alice",
    );
    await aliceBudget
      .getByText(/ \/ 50$/)
      .first()
      .waitFor();
    await context.close();
  });
});
