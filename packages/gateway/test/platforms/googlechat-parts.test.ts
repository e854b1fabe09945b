import { generateKeyPairSync } from "node:crypto";
import { isLobuError } from "@lobu/core";
import { type GoogleChatEmulator, startGoogleChatEmulator } from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatClient, rateLimitOf } from "../../src/platforms/googlechat/client.ts";
import { googleChatSettings } from "../../src/platforms/googlechat/config.ts";
import { toChat } from "../../src/platforms/googlechat/format.ts";
import { ChatEvent, originOf } from "../../src/platforms/googlechat/webhook/parse.ts";
import { bearerOf, chatTokenVerifier } from "../../src/platforms/googlechat/webhook/verify.ts";

/**
 * The Google Chat adapter's parts on their own: the bearer token in the
 * endpoint-URL audience mode (Google ID tokens), settings, where a message's
 * replies go, formatting, the rate-limit error, and the service account's
 * grant refused when signed with another key (the real @googleapis/chat
 * against the emulator).
 */

const ENDPOINT = "https://lobu.example.com/googlechat/events";
let gc: GoogleChatEmulator;

beforeAll(async () => {
  gc = await startGoogleChatEmulator({ projectNumber: "1", audience: "endpoint-url" });
  gc.setEndpoint(ENDPOINT);
});

afterAll(async () => {
  await gc?.close();
});

describe("the bearer token, endpoint-URL audience", () => {
  const verify = () =>
    chatTokenVerifier({ mode: "endpoint-url", endpointUrl: ENDPOINT }, gc.certsUrl);

  it("takes a Google ID token issued to Chat for this endpoint", async () => {
    expect(await verify()(await gc.token())).toMatchObject({ ok: true });
    expect(await verify()(await gc.token({ iss: "accounts.google.com" }))).toMatchObject({
      ok: true,
    });
  });

  it("refuses another audience, another account's ID token, an expired one, a stranger's key", async () => {
    const now = Math.floor(Date.now() / 1000);
    const refused = [
      await gc.token({ aud: "https://elsewhere.example.com/googlechat/events" }),
      await gc.token({ email: "someone@example.com" }),
      await gc.token({ email_verified: false }),
      await gc.token({ iat: now - 7200, exp: now - 3600 }),
      await gc.token({}, "stranger"),
      // Chat's project-number token: the right key set is Google's ID keys, not this one.
      await gc.token({}, "chat"),
    ];
    for (const token of refused) expect(await verify()(token)).toMatchObject({ ok: false });
  });

  it("reads only a bearer JWT from the header", () => {
    expect(bearerOf(undefined)).toMatchObject({ ok: false });
    expect(bearerOf("Basic abc")).toMatchObject({ ok: false });
    expect(bearerOf("Bearer a.b")).toMatchObject({ ok: false });
    expect(bearerOf(`Bearer ${"a".repeat(5000)}.b.c`)).toMatchObject({ ok: false });
    expect(bearerOf("Bearer a.b.c")).toEqual({ ok: true, token: "a.b.c" });
  });
});

describe("settings", () => {
  const env = () => ({ GOOGLE_CHAT_SERVICE_ACCOUNT_KEY: gc.serviceAccountKey });

  it("is off without a section, and says what is missing", () => {
    expect(googleChatSettings(undefined, env())).toBeUndefined();
    const missing = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return isLobuError(err) ? `${err.message} ${err.hint ?? ""}` : String(err);
      }
      return "no error";
    };
    expect(missing(() => googleChatSettings({}, env()))).toMatch(/project_number/);
    expect(missing(() => googleChatSettings({ audience: "endpoint-url" }, env()))).toMatch(
      /endpoint_url/,
    );
    expect(missing(() => googleChatSettings({ project_number: "12" }, {}))).toMatch(
      /GOOGLE_CHAT_SERVICE_ACCOUNT_KEY_FILE/,
    );
    expect(
      missing(() =>
        googleChatSettings({ project_number: "12" }, { GOOGLE_CHAT_SERVICE_ACCOUNT_KEY: "{}" }),
      ),
    ).toMatch(/client_email/);
    expect(missing(() => googleChatSettings({ project_number: "x1" }, env()))).toMatch(
      /platforms\.googlechat\.project_number/,
    );
  });

  it("chooses Google's key set by the audience mode", () => {
    expect(googleChatSettings({ project_number: "12" }, env())?.certsUrl).toMatch(
      /chat@system\.gserviceaccount\.com$/,
    );
    expect(
      googleChatSettings({ audience: "endpoint-url", endpoint_url: ENDPOINT }, env())?.certsUrl,
    ).toBe("https://www.googleapis.com/oauth2/v3/certs");
  });
});

describe("events, formatting, errors", () => {
  const event = (spaceType: string) =>
    ChatEvent.parse({
      type: "MESSAGE",
      user: { name: "users/42", displayName: "Ada" },
      space: { name: "spaces/AAA", spaceType },
      message: {
        name: "spaces/AAA/messages/m1",
        text: "@Lobu hi",
        argumentText: " hi",
        thread: { name: "spaces/AAA/threads/t1" },
      },
    });

  it("keys a space's conversation by thread, a DM's by the space", () => {
    const inSpace = originOf(event("SPACE") as Parameters<typeof originOf>[0]);
    expect(inSpace).toMatchObject({
      channelId: "spaces/AAA",
      threadId: "spaces/AAA/threads/t1",
      userId: "42",
      isDirect: false,
    });
    const inDm = originOf(event("DIRECT_MESSAGE") as Parameters<typeof originOf>[0]);
    expect(inDm.threadId).toBeUndefined();
    expect(inDm.isDirect).toBe(true);
  });

  it("refuses resource names that are not Chat's", () => {
    expect(ChatEvent.safeParse({ type: "MESSAGE", user: { name: "users/../x" } }).success).toBe(
      false,
    );
  });

  it("writes Chat's text formatting and splits at 4,096 characters", () => {
    expect(toChat("**bold** _it_ [site](https://example.com) <b>")[0]).toBe(
      "*bold* _it_ <https://example.com|site> ‹b>",
    );
    const parts = toChat(
      Array.from({ length: 30 }, (_, i) => `line ${i} ${"x".repeat(300)}`).join("\n\n"),
    );
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(4096);
  });

  it("reads 429 RESOURCE_EXHAUSTED as a rate limit", () => {
    expect(
      rateLimitOf({ response: { status: 429, headers: new Headers({ "retry-after": "3" }) } }),
    ).toMatchObject({ retryAfterSec: 3 });
    expect(
      rateLimitOf({ response: { status: 400, data: { error: { status: "RESOURCE_EXHAUSTED" } } } }),
    ).toBeDefined();
    expect(rateLimitOf({ response: { status: 403 } })).toBeUndefined();
    expect(rateLimitOf(new Error("boom"))).toBeUndefined();
  });
});

describe("the service account", () => {
  it("gets no access token with a key that is not the service account's", async () => {
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({
      type: "pkcs8",
      format: "pem",
    });
    const api = chatClient({
      ...googleChatSettings(
        { project_number: "12" },
        {
          GOOGLE_CHAT_SERVICE_ACCOUNT_KEY: JSON.stringify({
            client_email: gc.serviceAccountEmail,
            private_key: other,
          }),
          GOOGLE_CHAT_API_ROOT: gc.url,
          GOOGLE_CHAT_TOKEN_URL: gc.tokenUrl,
        },
      )!,
    });
    const space = gc.space("AAAAparts");
    await expect(
      api.spaces.messages.create({ parent: space, requestBody: { text: "hi" } }),
    ).rejects.toThrow();
    expect(
      gc.calls.some((c) => c.route === "POST token" && c.errorStatus === "invalid_grant"),
    ).toBe(true);
    expect(gc.messages(space)).toHaveLength(0);
  });
});
