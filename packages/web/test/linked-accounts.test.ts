import { type GatewayProcess, startGatewayProcess } from "@lobu/testkit";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DESKTOP, ensureWebBundle, launchChromium } from "./browser.ts";

/**
 * The settings page's Linked accounts section in real headless Chromium,
 * against a real `lobu run`: erin makes a code on one account's page, enters
 * it on her other account's page, enters the finishing code that page shows
 * back on the first, sees both, and unlinks.
 */

let gw: GatewayProcess;
let browser: Browser;

async function settingsPage(user: string): Promise<Page> {
  const res = await gw.api("/api/v1/settings-links", {
    method: "POST",
    body: JSON.stringify({ user }),
  });
  const { url } = (await res.json()) as { url: string };
  const context = await browser.newContext({ viewport: DESKTOP });
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForURL(`${gw.url}/settings`);
  return page;
}

beforeAll(async () => {
  ensureWebBundle();
  gw = await startGatewayProcess({
    toml: '[sandbox]\nidle_timeout = "10m"\n',
    env: { ANTHROPIC_API_KEY: "sk-ant-linked-accounts-page" },
  });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
});

describe("linked accounts on the settings page", () => {
  it("links two accounts with a code made on one page and entered on the other, then unlinks", async () => {
    const first = await settingsPage("erin-work");
    await first.getByText("No other account is linked.").waitFor();
    await first.getByRole("button", { name: "Link another account" }).click();
    const code =
      (await first
        .locator("code", { hasText: /^[0-9A-Z]{5}-[0-9A-Z]{5}$/ })
        .first()
        .textContent()) ?? "";
    expect(code).toMatch(/^[0-9A-Z]{5}-[0-9A-Z]{5}$/);

    const second = await settingsPage("erin-home");
    await second.getByLabel("Enter a code from your other account").fill(code.toLowerCase());
    await second.getByRole("button", { name: "Link", exact: true }).click();
    await second.getByText("Code accepted.", { exact: true }).waitFor();
    await second.getByText("Nothing is linked yet.", { exact: false }).waitFor();
    const finish =
      (await second
        .locator("code", { hasText: /^[0-9A-Z]{5}-[0-9A-Z]{5}$/ })
        .first()
        .textContent()) ?? "";
    expect(finish).toMatch(/^[0-9A-Z]{5}-[0-9A-Z]{5}$/);
    expect(finish).not.toBe(code);
    await second.getByText("No other account is linked.").waitFor();

    await first.getByLabel("Enter a code from your other account").fill(finish);
    await first.getByRole("button", { name: "Link", exact: true }).click();
    await first.getByText("Code accepted.", { exact: true }).waitFor();
    await first.getByText("api::erin-home joined this account.", { exact: false }).waitFor();
    await second.reload();
    await second.getByText("api::erin-work").waitFor();

    await second.getByRole("button", { name: "Unlink this account" }).click();
    await second.getByText("This account is unlinked.").waitFor();
    await second.getByText("No other account is linked.").waitFor();
    await first.context().close();
    await second.context().close();
  });
});
