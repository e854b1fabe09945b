import {
  type GatewayProcess,
  type MockLlm,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import {
  type AuthServer,
  type McpServerEmulator,
  startAuthServer,
  startMcpServer,
} from "@lobu/testkit/mcp";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DESKTOP, ensureWebBundle, launchChromium } from "./browser.ts";

/**
 * Connecting an MCP account in a real browser (headless Chromium): from the
 * settings page's Connect button, through the gateway's connect page (its CSP
 * lets the form's redirect go on to the provider), the authorization server's
 * sign-in and consent (oidc-provider), back to the callback, and the page
 * shows the connection; Disconnect revokes it.
 */

const KEY = "sk-ant-web-mcp-0123456789abcdef";

let llm: MockLlm;
let auth: AuthServer;
let mcp: McpServerEmulator;
let gw: GatewayProcess;
let browser: Browser;

beforeAll(async () => {
  ensureWebBundle();
  llm = await startMockLlm({ apiKey: KEY });
  let url = "";
  auth = await startAuthServer({ resource: () => url });
  mcp = await startMcpServer({ auth });
  url = mcp.url;
  gw = await startGatewayProcess({
    toml: ["[mcp.notes]", 'description = "Team notes"', `url = "${mcp.url}"`].join("\n"),
    env: { ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: llm.url, OPENAI_API_KEY: undefined },
  });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  await mcp?.close();
  await auth?.close();
  await llm?.close();
});

describe("connecting an MCP account in the browser", () => {
  it("Connect leads to the provider's sign-in and back; the page shows the connection", async () => {
    const res = await gw.api("/api/v1/settings-links", {
      method: "POST",
      body: JSON.stringify({ user: "alice", userName: "Alice" }),
    });
    const { url } = (await res.json()) as { url: string };
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    await page.goto(url);
    await page.getByText("Not connected: sign in to use it").waitFor();
    await page.getByRole("button", { name: "Connect", exact: true }).click();
    // The provider's sign-in, then its consent: the same form.
    await page.waitForURL(/\/interaction\//);
    await page.locator('input[name="account"]').fill("alice-acct");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(/\/interaction\//);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("Your account is connected.").waitFor();
    expect(page.url()).toContain(`${gw.url}/mcp/callback`);

    await page.goto(`${gw.url}/settings`);
    await page.getByText("Connected with your account").waitFor();
    const revocations = auth.revocations;
    await page.getByRole("button", { name: "Disconnect notes" }).click();
    await page.getByText("Not connected: sign in to use it").waitFor();
    expect(auth.revocations).toBeGreaterThan(revocations);
    await context.close();
  });
});
