import {
  createLocalPackageSet,
  type GatewayProcess,
  type LocalPackageSet,
  type MockLlm,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, it } from "vitest";
import { DESKTOP, ensureWebBundle, launchChromium, screenshotPath } from "./browser.ts";

/**
 * The settings page's Packages section in real headless Chromium, against a
 * real `lobu run` that builds a local package set with real Nix: each package
 * shows where it stands, and the page follows a build until it is done.
 */

let llm: MockLlm;
let gw: GatewayProcess;
let set: LocalPackageSet;
let browser: Browser;

async function linkFor(user: string): Promise<string> {
  const res = await gw.api("/api/v1/settings-links", {
    method: "POST",
    body: JSON.stringify({ user, userName: "Alice" }),
  });
  return ((await res.json()) as { url: string }).url;
}

beforeAll(async () => {
  ensureWebBundle();
  set = createLocalPackageSet();
  llm = await startMockLlm();
  gw = await startGatewayProcess({
    toml: ['[sandbox]\ndriver = "process"', set.toml()].join("\n"),
    env: { ANTHROPIC_API_KEY: "sk-ant-packages-page", ANTHROPIC_BASE_URL: llm.url },
  });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  await llm?.close();
  set?.remove();
});

describe("settings page: packages", () => {
  it("shows each package's state: ready with its version, failed with the reason", async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    await page.goto(await linkFor("alice"));
    await page.waitForURL(`${gw.url}/settings`);
    const field = page.getByLabel("Add a package");

    // A name the set does not have is refused with the closest one.
    await field.fill("hello-lobuu");
    await field.press("Enter");
    await page
      .getByText("no package named hello-lobuu in the package set; did you mean hello-lobu?")
      .waitFor();

    await field.fill("hello-lobu");
    await field.press("Enter");
    await page.getByText("Added hello-lobu: it is being installed.").waitFor();
    // The page follows the build by itself.
    await page.getByText("ready · 1.0").waitFor();

    await field.fill("broken-lobu");
    await field.press("Enter");
    await page.getByText(/building broken-lobu failed: error: builder for/).waitFor();
    await page.getByText("Build log (last lines)").click();
    await page.getByText("main.c:3: error: missing semicolon in main.c").waitFor();
    await page.screenshot({ path: screenshotPath("settings-packages.png"), fullPage: true });
    await context.close();
  });
});
