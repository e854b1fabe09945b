import {
  collectEvents,
  type GatewayProcess,
  type MockLlm,
  replyText,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiSettingsLink, openSettings } from "../settings/helpers.ts";

/**
 * A tool-using turn on Gemini, Amazon Bedrock, Vertex AI and Azure OpenAI with a person's own key,
 * through a real gateway and a sandboxed worker running pi: the key is set on
 * the settings page, the sandbox gets only a placeholder, and the gateway adds
 * the provider's own authentication (an API key header; a SigV4 signature; an
 * access token minted from a service-account key).
 * Both with the default sandbox driver and with the virtual pool, whose worker
 * reaches the relay over a shared socket (pool-egress.ts) — the AWS SDK uses
 * node:http there, not fetch.
 */

const GEMINI_KEY = "AIzaSy-carol-own-gemini-key-000000001";
const AWS = {
  accessKeyId: "AKIADAVEOWNKEY000001",
  secretAccessKey: "dave/own/secret/key/0000000001",
};
let llm: MockLlm;
let gw: GatewayProcess;

async function startGateway(driver: "auto" | "virtual") {
  llm = await startMockLlm({ apiKey: GEMINI_KEY, aws: [AWS] });
  gw = await startGatewayProcess({
    toml: [
      "[sandbox]",
      `driver = "${driver}"`,
      "[agents.default]",
      'name = "Assistant"',
      'tools = ["bash"]',
      "",
      "[providers.bedrock]",
      'type = "bedrock"',
      `base_url = "${llm.url}"`,
      'region = "eu-west-1"',
      'default_model = "anthropic.claude-3-5-haiku-20241022-v1:0"',
      "",
      "[providers.vertex]",
      'type = "vertex"',
      `base_url = "${llm.url}"`,
      'region = "europe-west4"',
      "",
      "[providers.azure]",
      'type = "azure"',
      `base_url = "${llm.url}"`,
      'default_model = "team-gpt-deployment"',
    ].join("\n"),
    env: {
      ANTHROPIC_API_KEY: undefined,
      OPENAI_API_KEY: undefined,
      GEMINI_API_KEY: undefined,
      GEMINI_BASE_URL: llm.url,
    },
  });
}

function send(user: string, text: string) {
  return gw.api("/api/v1/agents/default/messages", {
    method: "POST",
    headers: { accept: "text/event-stream" },
    body: JSON.stringify({ user, text }),
  });
}

/** The model runs `echo` with bash, then answers with what the tool printed. */
function scriptToolTurn(text: string) {
  llm.when(
    (r) => r.lastUserText === text,
    { toolCalls: [{ name: "bash", input: { command: "echo tool-ran-$((6*7))" } }] },
    (r) => ({ text: `The tool said ${r.toolResults[0]?.content.trim()}` }),
  );
}

describe.each(["auto", "virtual"] as const)("sandbox driver %s", (driver) => {
  beforeAll(() => startGateway(driver));
  afterAll(async () => {
    await gw?.stop();
    await llm?.close();
  });

  describe.each([
    {
      provider: "gemini",
      user: "carol",
      key: () => GEMINI_KEY,
      model: "gemini-2.5-flash",
      path: /^\/v1beta\/models\/gemini-2\.5-flash:streamGenerateContent\?alt=sse$/,
    },
    {
      provider: "bedrock",
      user: "dave",
      key: () => `${AWS.accessKeyId}:${AWS.secretAccessKey}`,
      model: "anthropic.claude-3-5-haiku-20241022-v1:0",
      path: /^\/model\/anthropic\.claude-3-5-haiku-20241022-v1%3A0\/converse-stream$/,
    },
    {
      provider: "vertex",
      user: "erin",
      // A service-account JSON key whose token_uri is the emulator's token endpoint.
      key: () => llm.googleServiceAccount({ projectId: "erin-project" }),
      model: "gemini-2.5-flash",
      path: /^\/v1\/projects\/erin-project\/locations\/europe-west4\/publishers\/google\/models\/gemini-2\.5-flash:streamGenerateContent\?alt=sse$/,
    },
    {
      provider: "azure",
      user: "frank",
      key: () => GEMINI_KEY,
      model: "team-gpt-deployment",
      path: /^\/openai\/v1\/responses\?api-version=v1$/,
    },
  ])("$provider with a person's own key", ({ provider, user, key: keyOf, model, path }) => {
    it("runs a tool-using turn; the key stays in the gateway", async () => {
      const key = keyOf();
      const me = await openSettings(gw, await apiSettingsLink(gw, user));
      expect((await me.call("PUT", `/keys/${provider}`, { value: key })).status).toBe(200);
      expect((await me.call("PUT", "/model", { provider, model: null })).status).toBe(200);

      const text = `${provider}: run the tool`;
      scriptToolTurn(text);
      const before = llm.requests.length;
      const events = await collectEvents(await send(user, text));
      expect(replyText(events)).toBe("The tool said tool-ran-42");
      expect(events.some((e) => e.type === "tool_result")).toBe(true);

      const calls = llm.requests.slice(before);
      expect(calls).toHaveLength(2);
      for (const req of calls) {
        expect(req.path).toMatch(path);
        expect(req.model).toBe(model);
        if (provider === "bedrock") {
          // Accepted by the emulator only when signed with the person's AWS secret.
          expect(req.headers.authorization).toMatch(
            /^AWS4-HMAC-SHA256 Credential=AKIADAVEOWNKEY000001\//,
          );
        } else if (provider === "vertex") {
          // An access token the gateway minted from the person's service-account key.
          expect(req.apiKey).toMatch(/^ya29\./);
        } else expect(req.apiKey).toBe(GEMINI_KEY);
      }
      expect(calls[1]!.toolResults[0]?.content).toContain("tool-ran-42");

      // The sandbox saw a placeholder, never the key (nor the AWS secret, nor the private key).
      const secretPart =
        provider === "vertex"
          ? (JSON.parse(key) as { private_key: string }).private_key.split("\n")[5]!
          : key.split(":").at(-1)!;
      const probe = `${provider}: show env`;
      llm.when(
        (r) => r.lastUserText === probe,
        {
          toolCalls: [
            {
              name: "bash",
              input: { command: "env; cat /proc/self/environ 2>/dev/null | tr '\\0' '\\n'" },
            },
          ],
        },
        (r) => ({ text: r.toolResults[0]?.content ?? "" }),
      );
      const envEvents = await collectEvents(await send(user, probe));
      const shown = replyText(envEvents);
      expect(shown.length).toBeGreaterThan(0);
      expect(shown).not.toContain(secretPart);
    });
  });
});
