import { readFileSync } from "node:fs";
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
 * "Your data" on the settings page, in real headless Chromium against a real
 * `lobu run`: a person downloads their data and erases it, confirming first.
 */

const KEY = "sk-ant-privacy-browser-key-0000000000";
let llm: MockLlm;
let gw: GatewayProcess;
let browser: Browser;

beforeAll(async () => {
  ensureWebBundle();
  llm = await startMockLlm({ apiKey: KEY });
  gw = await startGatewayProcess({
    toml: '[sandbox]\ndriver = "host"\nallow_unsandboxed = true\n',
    env: { ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: llm.url, OPENAI_API_KEY: undefined },
  });
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  await llm?.close();
});

async function linkFor(user: string): Promise<string> {
  const res = await gw.api("/api/v1/settings-links", {
    method: "POST",
    body: JSON.stringify({ user, userName: "Pia" }),
  });
  return ((await res.json()) as { url: string }).url;
}

describe("settings page: your data", () => {
  it("downloads the person's data, and erases it only once they typed the confirmation", async () => {
    await collectEvents(
      await gw.api("/api/v1/agents/default/messages", {
        method: "POST",
        headers: { accept: "text/event-stream" },
        body: JSON.stringify({ user: "pia", channel: "web", text: "pia's private note" }),
      }),
    );
    const context = await browser.newContext({ viewport: DESKTOP, acceptDownloads: true });
    const page = await context.newPage();
    await page.goto(await linkFor("pia"));
    await page.waitForURL(`${gw.url}/settings`);

    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Download my data" }).click(),
    ]);
    const bundle = readFileSync((await download.path())!, "utf8");
    expect(JSON.parse(bundle)).toMatchObject({ userKey: "api::pia" });
    expect(bundle).toContain("pia's private note");

    await page.getByRole("button", { name: "Erase everything…" }).click();
    const erase = page.getByRole("button", { name: "Erase everything", exact: true });
    expect(await erase.isDisabled()).toBe(true);
    await page.getByLabel("Type erase everything to confirm").fill("erase everything");
    await erase.click();
    await page.getByText("Everything this gateway kept about you was erased").waitFor();

    const after = await gw.api(`/api/v1/admin/people/${encodeURIComponent("api::pia")}/export`);
    expect(await after.text()).not.toContain("pia's private note");
    await context.close();
  }, 120_000);
});
