import { signWebAppInitData, slackSignature } from "@lobu/testkit";
import { describe, expect, it } from "vitest";
import { responseUrlAllowed } from "../../src/platforms/slack/respond.ts";
import {
  checkSignatureHeaders,
  verifySlackSignature,
} from "../../src/platforms/slack/webhook/verify.ts";
import { verifyInitData } from "../../src/platforms/telegram/init-data.ts";

const TOKEN = "123456:ABC-real-token";
const user = { id: 42, first_name: "Ada", username: "ada" };

describe("Telegram Mini App initData", () => {
  it("accepts data signed with the bot's token", () => {
    const now = 1_800_000_000;
    const data = signWebAppInitData(TOKEN, {
      user,
      authDate: now - 10,
      startParam: "settings",
      chatType: "private",
    });
    const result = verifyInitData(data, TOKEN, { maxAgeSec: 3600, now });
    expect(result).toMatchObject({
      ok: true,
      user: { id: 42, username: "ada" },
      authDate: now - 10,
      startParam: "settings",
      chatType: "private",
    });
  });

  it.each([
    ["another bot's token", { botToken: "999:other" }],
    ["a tampered user", { tamper: { user: JSON.stringify({ id: 1, first_name: "Eve" }) } }],
    ["a tampered auth_date", { tamper: { auth_date: "1800000000" } }],
    ["no hash", { omitHash: true }],
  ])("refuses %s", (_name, forge) => {
    const now = 1_800_000_000;
    const data = signWebAppInitData(TOKEN, { user, authDate: now - 10, ...forge });
    expect(verifyInitData(data, TOKEN, { maxAgeSec: 3600, now }).ok).toBe(false);
  });

  it("refuses data older than the maximum age, and from the future", () => {
    const now = 1_800_000_000;
    const old = signWebAppInitData(TOKEN, { user, authDate: now - 3601 });
    expect(verifyInitData(old, TOKEN, { maxAgeSec: 3600, now })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/too old/),
    });
    const future = signWebAppInitData(TOKEN, { user, authDate: now + 3600 });
    expect(verifyInitData(future, TOKEN, { maxAgeSec: 3600, now }).ok).toBe(false);
  });

  it("refuses garbage and duplicated fields", () => {
    expect(verifyInitData("", TOKEN, { maxAgeSec: 60 }).ok).toBe(false);
    expect(verifyInitData("hash=zz&user=%7B%7D", TOKEN, { maxAgeSec: 60 }).ok).toBe(false);
    const data = signWebAppInitData(TOKEN, { user });
    expect(verifyInitData(`${data}&auth_date=1`, TOKEN, { maxAgeSec: 3600 }).ok).toBe(false);
  });
});

describe("Slack request signatures", () => {
  const secret = "8f742231b10e8888abcd99yyyzzz85a5";
  const body = '{"type":"event_callback"}';
  const now = 1_800_000_000;
  const headers = (ts: number, sig = slackSignature(secret, ts, body)) => ({
    timestamp: String(ts),
    signature: sig,
  });

  it("accepts a fresh, correctly signed body", () => {
    expect(verifySlackSignature(secret, headers(now - 5), body, now)).toEqual({ ok: true });
  });

  it("refuses a wrong secret, a changed body, a stale or missing timestamp", () => {
    expect(
      verifySlackSignature(secret, headers(now, slackSignature("wrong", now, body)), body, now).ok,
    ).toBe(false);
    expect(verifySlackSignature(secret, headers(now), `${body} `, now).ok).toBe(false);
    expect(verifySlackSignature(secret, headers(now - 301), body, now)).toMatchObject({
      ok: false,
      reason: "stale timestamp",
    });
    expect(
      verifySlackSignature(secret, { timestamp: undefined, signature: "v0=abc" }, body, now).ok,
    ).toBe(false);
    expect(verifySlackSignature(secret, headers(now, "v0=short"), body, now).ok).toBe(false);
  });

  it("refuses unsigned or stale requests on their headers alone, before the body is read", () => {
    expect(checkSignatureHeaders(headers(now), now)).toEqual({ ok: true });
    expect(checkSignatureHeaders({ timestamp: String(now), signature: undefined }, now).ok).toBe(
      false,
    );
    expect(checkSignatureHeaders(headers(now, "v0=nothex"), now).ok).toBe(false);
    expect(checkSignatureHeaders(headers(now + 301), now)).toMatchObject({
      reason: "stale timestamp",
    });
  });
});

describe("Slack response_url", () => {
  it("is posted to only on Slack's hooks host (HTTPS) or the configured Web API's origin", () => {
    const api = "https://slack.com/api/";
    expect(responseUrlAllowed("https://hooks.slack.com/commands/T1/1/abc", api)).toBe(true);
    expect(responseUrlAllowed("https://hooks.slack-gov.com/actions/T1/1/abc", api)).toBe(true);
    expect(responseUrlAllowed("http://hooks.slack.com/commands/T1/1/abc", api)).toBe(false);
    expect(responseUrlAllowed("https://hooks.slack.com.evil.example/x", api)).toBe(false);
    expect(responseUrlAllowed("https://169.254.169.254/latest/meta-data", api)).toBe(false);
    expect(responseUrlAllowed("not a url", api)).toBe(false);
    const emulator = "http://127.0.0.1:4000/api/";
    expect(responseUrlAllowed("http://127.0.0.1:4000/commands/T1/1/abc", emulator)).toBe(true);
    expect(responseUrlAllowed("http://127.0.0.1:4001/commands/T1/1/abc", emulator)).toBe(false);
  });
});
