import {
  collectEvents,
  type GatewayProcess,
  type MockLlm,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiSettingsLink, openSettings } from "../../gateway/test/settings/helpers.ts";
import { DESKTOP, ensureWebBundle, launchChromium } from "./browser.ts";

/**
 * The model picker on the settings page, in real headless Chromium against a
 * real `lobu run`: it offers what the operator allows (lobu.toml `models`) of
 * the providers with a key, with the catalogue's facts; the choice is used by
 * the next turn; the settings API and the LLM relay refuse anything else.
 */

const ANTHROPIC_KEY = "sk-ant-picker-team-key-000000000000";
const OPENAI_KEY = "sk-openai-picker-team-key-1111111111";
let llm: MockLlm;
let gw: GatewayProcess;
let browser: Browser;

beforeAll(async () => {
  ensureWebBundle();
  llm = await startMockLlm();
  gw = await startGatewayProcess({
    toml: [
      "[sandbox]",
      'driver = "host"',
      "allow_unsandboxed = true",
      "[agents.default]",
      'provider = "anthropic"',
      'model = "claude-sonnet-4-5"',
      'models = ["anthropic/claude-haiku-4-5", "openai/gpt-4.1*", "groq/*"]',
    ].join("\n"),
    env: {
      ANTHROPIC_API_KEY: ANTHROPIC_KEY,
      ANTHROPIC_BASE_URL: llm.url,
      OPENAI_API_KEY: OPENAI_KEY,
      OPENAI_BASE_URL: llm.openaiUrl,
      GROQ_API_KEY: undefined,
    },
  });
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  await llm?.close();
});

function say(user: string, text: string) {
  return gw
    .api("/api/v1/agents/default/messages", {
      method: "POST",
      headers: { accept: "text/event-stream" },
      body: JSON.stringify({ user, channel: "web", text }),
    })
    .then(collectEvents);
}

describe("settings page: model picker", () => {
  it("offers only allowed models with a key, and the next turn uses the one picked", async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    await page.goto(await apiSettingsLink(gw, "pat"));
    await page.waitForURL(`${gw.url}/settings`);
    const picker = page.getByRole("combobox", { name: "Model" });
    await picker.waitFor();
    const offered = await picker
      .locator("option")
      .evaluateAll((os) => os.map((o) => (o as unknown as { value: string }).value));
    expect(offered).toEqual([
      "",
      "anthropic/claude-sonnet-4-5",
      "anthropic/claude-haiku-4-5",
      "openai/gpt-4.1",
      "openai/gpt-4.1-mini",
      "openai/gpt-4.1-nano",
    ]);
    // Groq is allowed but nobody has a key: its key field is there, its models are not.
    await page.getByLabel("Your groq API key").waitFor();
    expect(await page.getByLabel("Your mistral API key").count()).toBe(0);

    await picker.selectOption("openai/gpt-4.1-mini");
    const facts = await page.getByTestId("model-facts").textContent();
    expect(facts).toContain("1M context");
    expect(facts).toContain("images");
    expect(facts).toContain("$0.4 in / $1.6 out per million tokens");
    await page.getByRole("button", { name: "Save model" }).click();
    await page.getByText("Model saved.").waitFor();

    await say("pat", "which model now?");
    const call = llm.requests.filter((r) => r.lastUserText === "which model now?").at(-1)!;
    expect([call.api, call.apiKey, call.model]).toEqual(["openai", OPENAI_KEY, "gpt-4.1-mini"]);
    await context.close();
  }, 120_000);

  it("refuses a disallowed provider or model through the settings API", async () => {
    const s = await openSettings(gw, await apiSettingsLink(gw, "quin"));
    for (const choice of [
      { provider: "anthropic", model: "claude-opus-4-5" },
      { provider: "openai", model: "gpt-5" },
      { provider: "mistral", model: null },
      { provider: null, model: "claude-opus-4-5" },
    ]) {
      const res = await s.call("PUT", "/model", choice);
      expect(res.status, JSON.stringify(choice)).toBe(403);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(
        "model_not_allowed",
      );
    }
    const ok = await s.call("PUT", "/model", { provider: "anthropic", model: "claude-haiku-4-5" });
    expect(ok.status).toBe(200);
    const view = (await ok.json()) as { model: { model: string; choices: { model: string }[] } };
    expect(view.model.model).toBe("claude-haiku-4-5");
    expect(view.model.choices.map((c) => c.model)).not.toContain("claude-opus-4-5");
  });
});
