import {
  type GatewayProcess,
  type GoogleChatEmulator,
  type MockLlm,
  startGatewayProcess,
  startGoogleChatEmulator,
  startMockLlm,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  conversationsOf,
  drainedQueue,
  llmEnv,
  PROVIDER_KEY,
  queueDepth,
  WAIT,
} from "./helpers.ts";

/**
 * Google Chat with the endpoint-URL authentication audience: every request
 * carries a Google ID token for the configured endpoint URL, issued to
 * Chat's service account, checked by a real gateway against the emulator's
 * published ID-token keys.
 */

const CONFIGURED_URL = "https://lobu.example.com/googlechat/events";

let llm: MockLlm;
let gc: GoogleChatEmulator;
let gw: GatewayProcess;

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: PROVIDER_KEY });
  gc = await startGoogleChatEmulator({ projectNumber: "135792468013", audience: "endpoint-url" });
  gw = await startGatewayProcess({
    toml: [
      "[platforms.googlechat]",
      'audience = "endpoint-url"',
      `endpoint_url = "${CONFIGURED_URL}"`,
      'stream_interval = "200ms"',
    ].join("\n"),
    env: {
      ...llmEnv(llm),
      GOOGLE_CHAT_SERVICE_ACCOUNT_KEY: gc.serviceAccountKey,
      GOOGLE_CHAT_CERTS_URL: gc.certsUrl,
      GOOGLE_CHAT_API_ROOT: gc.url,
      GOOGLE_CHAT_TOKEN_URL: gc.tokenUrl,
    },
  });
  // Chat posts to the gateway; its tokens name the URL as configured (a proxy sits between in production).
  gc.setEndpoint(`${gw.url}/googlechat/events`, CONFIGURED_URL);
});

afterAll(async () => {
  await gw?.stop();
  await gc?.close();
  await llm?.close();
});

describe("Google Chat: endpoint-URL audience", () => {
  it("takes Chat's ID token for the configured URL and answers", async () => {
    const ann = { id: "106000000000000000001", displayName: "Ann" };
    const space = gc.dmSpace(ann);
    llm.when((r) => r.lastUserText === "hello by ID token", { text: "Hello, Ann." });
    expect((await gc.userSends(ann, space, "hello by ID token")).status).toBe(200);
    await gc.waitFor(() => gc.messages(space).find((m) => m.text === "Hello, Ann."), {
      ...WAIT,
      description: "the reply",
    });
  });

  it("refuses ID tokens for another URL or another account, and project-number tokens", async () => {
    const ben = { id: "106000000000000000002", displayName: "Ben" };
    const space = gc.dmSpace(ben);
    const before = await drainedQueue(gw);
    const event = JSON.stringify({
      type: "MESSAGE",
      user: { name: `users/${ben.id}`, type: "HUMAN" },
      space: { name: space, spaceType: "DIRECT_MESSAGE" },
      message: { name: `${space}/messages/x.1`, text: "let me in" },
    });
    const tokens = [
      await gc.token({ aud: `${gw.url}/googlechat/events` }),
      await gc.token({ email: "attacker@example.com" }),
      await gc.token({ aud: "135792468013", iss: "chat@system.gserviceaccount.com" }, "chat"),
      await gc.token({}, "stranger"),
    ];
    for (const token of tokens) expect((await gc.post(event, token)).status).toBe(401);
    expect(await conversationsOf(gw, ben.id)).toHaveLength(0);
    expect(await queueDepth(gw)).toBe(before);
  });
});
