import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  collectEvents,
  type GatewayProcess,
  type MockLlm,
  type SlackEmulator,
  startGatewayProcess,
  startMockLlm,
  startSlackEmulator,
  startTelegramEmulator,
  type TelegramEmulator,
} from "@lobu/testkit";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventReader } from "../../gateway/test/settings/helpers.ts";
import { DESKTOP, ensureWebBundle, launchChromium, PHONE, screenshotPath } from "./browser.ts";

/**
 * The settings page and the admin UI in real headless Chromium, against a real
 * `lobu run` with the Slack and Telegram emulators, the mock LLM and a real
 * upstream HTTP server the agent's sandbox tries to reach.
 */

const TEAM_KEY = "sk-ant-team-key-for-browser-tests-0000";
const OWN_KEY = "sk-ant-alices-own-key-1234567890abcdef";
const SLACK_TEAM = "T0LOBU";
const SLACK_SECRET = "slack-signing-secret-browser";
const SLACK_TOKEN = "xoxb-5555-6666-browser";
const TG_TOKEN = "7000000003:AAbrowser-test-token";

let llm: MockLlm;
let slack: SlackEmulator;
let tg: TelegramEmulator;
let gw: GatewayProcess;
let upstream: Server;
let upstreamUrl: string;
let browser: Browser;

/** A message from an API-channel user, read to the end. */
async function say(user: string, text: string) {
  const res = await gw.api("/api/v1/agents/default/messages", {
    method: "POST",
    headers: { accept: "text/event-stream" },
    body: JSON.stringify({
      user,
      channel: "web",
      text,
      userName: user[0]!.toUpperCase() + user.slice(1),
    }),
  });
  return collectEvents(res);
}

async function linkFor(user: string): Promise<string> {
  const res = await gw.api("/api/v1/settings-links", {
    method: "POST",
    body: JSON.stringify({ user, userName: user[0]!.toUpperCase() + user.slice(1) }),
  });
  return ((await res.json()) as { url: string }).url;
}

async function newPage(
  viewport = DESKTOP,
  mobile = false,
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({
    viewport,
    ...(mobile ? { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } : {}),
  });
  const page = await context.newPage();
  return { context, page };
}

/** The tool result the model got for the last round of `text`. */
function toolResultFor(text: string) {
  return llm.requests.filter((r) => r.lastUserText === text).at(-1)?.toolResults[0];
}

beforeAll(async () => {
  ensureWebBundle();
  upstream = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("hello-from-upstream\n");
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  // *.localhost always means loopback (RFC 6761): reachable only because the operator opts in below.
  upstreamUrl = `http://upstream.localhost:${(upstream.address() as AddressInfo).port}/`;
  llm = await startMockLlm();
  slack = await startSlackEmulator({
    signingSecret: SLACK_SECRET,
    botToken: SLACK_TOKEN,
    teamId: SLACK_TEAM,
    botName: "lobu",
    subscriptions: ["app_mention", "message.im"],
  });
  tg = await startTelegramEmulator({
    botToken: TG_TOKEN,
    botUsername: "lobu_browser_bot",
    rateLimits: false,
  });
  gw = await startGatewayProcess({
    toml: [
      "[sandbox]",
      'idle_timeout = "10m"',
      "",
      "[network]",
      'allow_private_ranges = ["127.0.0.1/32", "::1/128"]',
      'deny = ["*.internal.example"]',
      "",
      "[agents.default]",
      'name = "Research assistant"',
      'description = "Reads, summarises and files things for you."',
      "[agents.default.policy]",
      'tools = { write = "ask", edit = "ask" }',
      "",
      "[skills.github]",
      'description = "Work with GitHub issues and pull requests"',
      'instructions = "Use the GitHub API."',
      'domains = ["api.github.com"]',
      'packages = ["gh"]',
      "[skills.partner-api]",
      'description = "The internal API of our partner"',
      'instructions = "Use the partner API."',
      'domains = ["upstream.localhost"]',
      "[skills.weather]",
      'description = "Forecasts for any city"',
      'instructions = "Use the weather API."',
      "",
      "[mcp.linear]",
      'description = "Linear issues and projects"',
      'url = "https://mcp.linear.example/sse"',
      "",
      "[admin]",
      `users = ["slack:${SLACK_TEAM}:UADMIN"]`,
      "",
      "[platforms.slack]",
      'stream_interval = "200ms"',
      "[platforms.telegram]",
      'mode = "polling"',
    ].join("\n"),
    env: {
      ANTHROPIC_API_KEY: TEAM_KEY,
      ANTHROPIC_BASE_URL: llm.url,
      OPENAI_API_KEY: undefined,
      SLACK_BOT_TOKEN: SLACK_TOKEN,
      SLACK_SIGNING_SECRET: SLACK_SECRET,
      SLACK_API_URL: slack.apiUrl,
      TELEGRAM_BOT_TOKEN: TG_TOKEN,
      TELEGRAM_API_ROOT: tg.url,
    },
  });
  slack.eventsUrl = `${gw.url}/slack/events`;
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  await slack?.close();
  await tg?.close();
  await llm?.close();
  await new Promise((r) => upstream?.close(r));
});

describe("settings page", () => {
  it("opens from a one-time link; the person's own key is used from the next turn", async () => {
    await say("alice", "hello");
    expect(llm.requests.at(-1)?.apiKey).toBe(TEAM_KEY);

    const { context, page } = await newPage();
    await page.goto(await linkFor("alice"));
    // The confirmation page continues by itself to the settings page.
    await page.waitForURL(`${gw.url}/settings`);
    // Waited for as the page's other content is (expect.poll gives up after a second).
    await page
      .getByRole("heading", { level: 1, name: "Research assistant", exact: true })
      .waitFor();
    const cookies = await context.cookies();
    expect(cookies.find((c) => c.name === "lobu_settings")).toMatchObject({
      httpOnly: true,
      sameSite: "Lax",
    });

    const keyField = page.getByLabel("Your anthropic API key");
    await keyField.fill(OWN_KEY);
    await keyField.press("Enter");
    await page.getByText("Your anthropic key is saved.").waitFor();
    // Only the masked hint is shown, never the key.
    await page.getByText("sk-…cdef").waitFor();
    expect(await page.content()).not.toContain(OWN_KEY);
    // Packages are off on this gateway, and the MCP server cannot be reached: the page says so.
    await page
      .getByRole("note")
      .filter({ hasText: "Not available here: Nix packages are not enabled on this gateway" })
      .waitFor();
    await page.getByText("The server cannot be reached right now").waitFor();

    await say("alice", "now with my key");
    expect(llm.requests.filter((r) => r.lastUserText === "now with my key").at(-1)?.apiKey).toBe(
      OWN_KEY,
    );
    await context.close();
  });

  it("allows a domain and installs a skill; the agent's next turn uses them where it was refused before", async () => {
    const curl = `curl -sS -m 10 ${upstreamUrl}; echo " exit=$?"`;
    const scriptCurl = (text: string) =>
      llm.when(
        (r) => r.lastUserText === text,
        { toolCalls: [{ name: "bash", input: { command: curl } }] },
        (r) => ({ text: `Got: ${r.toolResults[0]?.content.trim()}` }),
      );
    scriptCurl("fetch the upstream");
    scriptCurl("fetch it again");
    scriptCurl("fetch it with the skill");

    await say("alice", "fetch the upstream");
    const before = toolResultFor("fetch the upstream")!.content;
    expect(before).not.toContain("hello-from-upstream");
    expect(before).toContain("upstream.localhost is not in the agent's network allow list");

    const { context, page } = await newPage();
    await page.goto(await linkFor("alice"));
    const field = page.getByLabel("Allow a domain");
    // Checked as typed, with the reason next to the field.
    await field.fill("https://upstream.localhost/");
    await page.getByText("Enter just the host").waitFor();
    expect(await field.getAttribute("aria-invalid")).toBe("true");
    await field.fill("upstream.localhost");
    await field.press("Enter");
    await page.getByText("Allowed upstream.localhost.").waitFor();

    // The grant reaches the proxy at once: the domain rule now admits the name. This
    // upstream is on loopback, which only the operator can open (allow_private_ranges
    // applies to hosts allowed in lobu.toml), so the address guard answers instead.
    await say("alice", "fetch it again");
    const granted = toolResultFor("fetch it again")!.content;
    expect(granted).not.toContain("is not in the agent's network allow list");
    expect(granted).toContain("upstream.localhost is allowed only from the settings page");

    // A catalog skill brings the operator's domains: installing it opens the internal API.
    await page.getByRole("button", { name: "Install skill partner-api" }).click();
    // What it brings is shown, and nothing is installed until that is confirmed.
    const bringing = page.getByRole("group", { name: /Installing partner-api/ });
    await bringing.getByText("upstream.localhost").waitFor();
    await page.getByRole("button", { name: "Confirm install partner-api" }).click();
    await page.getByText("Installed partner-api.").waitFor();
    await page.screenshot({ path: screenshotPath("settings-desktop.png"), fullPage: true });
    await context.close();
    await say("alice", "fetch it with the skill");
    expect(toolResultFor("fetch it with the skill")?.content).toContain("hello-from-upstream");
  });

  it("answers the agent's capability request on a phone-sized screen", async () => {
    llm.when(
      (r) => r.lastUserText === "check the repo",
      {
        toolCalls: [
          {
            name: "request_capability",
            input: {
              kind: "domain",
              value: "api.github.com",
              reason: "To read the open issues of your repository.",
            },
          },
        ],
      },
      (r) => ({ text: `Tool said: ${r.toolResults[0]?.content.split("\n")[0]}` }),
    );
    const res = await gw.api("/api/v1/agents/default/messages", {
      method: "POST",
      headers: { accept: "text/event-stream" },
      body: JSON.stringify({
        user: "bob",
        channel: "web",
        text: "check the repo",
        userName: "Bob",
      }),
    });
    const events = eventReader(res);
    // The capability card carries the settings link, as every channel shows it.
    const request = await events.until("capability_request");
    const url = request.url as string;
    expect(url).toMatch(/\/settings\/claim\//);

    const { context, page } = await newPage(PHONE, true);
    await page.goto(url);
    await page.getByText("Allow api.github.com for your agent?").waitFor();
    await page.getByText("To read the open issues of your repository.").waitFor();
    await page.screenshot({ path: screenshotPath("settings-request-phone.png") });
    await page.getByRole("button", { name: "Approve" }).click();
    await page.getByText("Approved. Your agent continues in the chat.").waitFor();

    expect((await events.rest()).at(-1)).toMatchObject({
      type: "done",
      text: "Tool said: granted: domain api.github.com is now available. Continue with the task.",
    });
    // The page shows the new permission once refreshed after the answer.
    await page.getByText("api.github.com", { exact: true }).first().waitFor();
    await page.screenshot({ path: screenshotPath("settings-phone.png"), fullPage: true });
    await context.close();
  });

  it("refuses a reused or unknown link with a clear page", async () => {
    const url = await linkFor("carol");
    const first = await newPage();
    await first.page.goto(url);
    await first.page.waitForURL(`${gw.url}/settings`);
    await first.context.close();

    const { context, page } = await newPage();
    const reused = await page.goto(url);
    // The confirmation page itself already knows the code was used.
    expect(reused?.status()).toBe(410);
    await page.getByRole("heading", { name: "This link was already used" }).waitFor();
    const unknown = await page.goto(`${gw.url}/settings/claim/${"Z".repeat(32)}`);
    expect(unknown?.status()).toBe(401);
    await page.getByRole("heading", { name: "This link is not valid" }).waitFor();
    // Without a session the page says how to get one.
    await page.goto(`${gw.url}/settings`);
    await page.getByRole("heading", { name: "Open your settings from the chat" }).waitFor();
    await context.close();
  });

  it("refuses state changes without the CSRF token, even from a same-site page", async () => {
    const { context, page } = await newPage();
    await page.goto(await linkFor("dave"));
    await page.getByLabel("Allow a domain").waitFor();
    const status = await page.evaluate(async () => {
      const res = await fetch("/settings/api/domains", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "sneaky.example" }),
      });
      return res.status;
    });
    expect(status).toBe(403);

    // Another origin on the same site (another port of 127.0.0.1) gets the Lax cookie but not past the checks.
    const evil = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(
        `<form id="f" method="post" action="${gw.url}/settings/api/domains"><input name="name" value="evil.example"></form><script>document.getElementById("f").submit()</script>`,
      );
    });
    await new Promise<void>((r) => evil.listen(0, "127.0.0.1", r));
    try {
      const refused = page.waitForResponse(
        (r) => r.url().endsWith("/settings/api/domains") && r.request().method() === "POST",
      );
      await page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`);
      expect((await refused).status()).toBe(403);
    } finally {
      await new Promise((r) => evil.close(r));
    }
    const state = await page.goto(`${gw.url}/settings/api/state`);
    expect(JSON.stringify(await state?.json())).not.toMatch(/sneaky|evil/);
    await context.close();
  });

  it("opens as a Telegram Mini App from signed initData, and refuses forged initData", async () => {
    const initData = tg.webAppInitData({
      user: { id: 777001, first_name: "Tess", username: "tess" },
    });
    const { context, page } = await newPage(PHONE, true);
    await page.goto(
      `${gw.url}/settings#tgWebAppData=${encodeURIComponent(initData)}&tgWebAppVersion=8.0&tgWebAppPlatform=ios`,
    );
    await page.getByText("(telegram)").waitFor();
    expect(await page.getByRole("heading", { level: 1 }).textContent()).toBe("Research assistant");
    // The gateway takes an initData once: a reload goes on with the session it opened.
    const logins: number[] = [];
    page.on("response", (r) => {
      if (r.url().endsWith("/settings/api/session/telegram")) logins.push(r.status());
    });
    await page.reload();
    await page.getByText("(telegram)").waitFor();
    expect(logins).toEqual([]);
    await context.close();

    const forged = tg.webAppInitData({
      user: { id: 777002, first_name: "Eve" },
      tamper: { user: JSON.stringify({ id: 777001, first_name: "Tess" }) },
    });
    const second = await newPage(PHONE, true);
    const refused = second.page.waitForResponse((r) =>
      r.url().endsWith("/settings/api/session/telegram"),
    );
    await second.page.goto(`${gw.url}/settings#tgWebAppData=${encodeURIComponent(forged)}`);
    expect((await refused).status()).toBe(401);
    await second.page.getByRole("heading", { name: "Open your settings from the chat" }).waitFor();
    await second.page.getByText("hash does not match").waitFor();
    await second.context.close();
  });

  it("opens from the link the Slack bot sends when the person asks for 'settings'", async () => {
    const im = slack.imChannel("UADMIN");
    await slack.dm({ user: "UADMIN", text: "settings" });
    const msg = await slack.waitFor(
      () =>
        slack.messages(im.id).find((m) => JSON.stringify(m.blocks ?? []).includes("lobu-settings")),
      { timeoutMs: 30_000, description: "the settings message" },
    );
    const url = /"url":"([^"]+)"/.exec(JSON.stringify(msg.blocks))?.[1];
    expect(
      url,
      "the Slack adapter's settings link (ctx.settingsLink) must be a claim link",
    ).toMatch(/\/settings\/claim\//);

    const { context, page } = await newPage();
    await page.goto(url!);
    await page.waitForURL(`${gw.url}/settings`);
    await page.getByText("(slack)").waitFor();
    // A configured admin gets an Admin button that needs no token.
    await page.getByRole("button", { name: "Admin" }).click();
    await page.waitForURL(`${gw.url}/admin`);
    await page.getByRole("tab", { name: "Sandboxes" }).waitFor();
    await context.close();
  });
});

describe("admin UI", () => {
  it("logs in with an admin token and shows the sandboxes live", async () => {
    const { context, page } = await newPage({ width: 1360, height: 820 });
    await page.goto(`${gw.url}/admin`);
    const token = page.getByLabel("Admin API token");
    await token.fill("not-a-token");
    await token.press("Enter");
    await page.getByText("invalid or revoked API token").waitFor();
    await token.fill(gw.token);
    await token.press("Enter");
    await page.getByRole("tab", { name: "Sandboxes", selected: true }).waitFor();
    await page.getByRole("cell", { name: /alice/ }).first().waitFor();

    // A new person's sandbox shows up without reloading the page.
    await say("zoe", "hi from zoe");
    await page
      .locator("tr", { hasText: "api:zoe" })
      .filter({ hasText: "running" })
      .waitFor({ timeout: 15_000 });
    await page.screenshot({ path: screenshotPath("admin-sandboxes.png") });

    // Keyboard: arrow keys move between tabs.
    await page.getByRole("tab", { name: "Sandboxes" }).focus();
    await page.keyboard.press("ArrowRight");
    await page.getByRole("tab", { name: "Users", selected: true }).waitFor();
    await page.getByText("api::alice").waitFor();

    await page.getByRole("tab", { name: "Usage" }).click();
    await page.getByRole("heading", { name: "Per person and model" }).waitFor();
    await page.getByRole("cell", { name: "api::alice" }).first().waitFor();

    await page.getByRole("tab", { name: "Audit log" }).click();
    await page.getByLabel("Action starts with").fill("settings.");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.getByRole("cell", { name: "settings.domain_allowed" }).first().waitFor();
    await page.screenshot({ path: screenshotPath("admin-audit.png") });
    await context.close();
  });

  it("refuses a non-admin token", async () => {
    const created = await gw.api("/api/v1/tokens", {
      method: "POST",
      body: JSON.stringify({ name: "integration", role: "client" }),
    });
    const { token } = (await created.json()) as { token: string };
    const { context, page } = await newPage();
    await page.goto(`${gw.url}/admin`);
    const refused = page.waitForResponse((r) => r.url().endsWith("/admin/api/login"));
    await page.getByLabel("Admin API token").fill(token);
    await page.getByLabel("Admin API token").press("Enter");
    expect((await refused).status()).toBe(403);
    await page.getByText("this token is not an admin token").waitFor();
    await context.close();
  });
});
