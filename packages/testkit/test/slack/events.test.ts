import { SocketModeClient } from "@slack/socket-mode";
import { LogLevel, WebClient } from "@slack/web-api";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type SlackEmulator, startSlackEmulator } from "../../src/platforms.ts";
import { startReceiver } from "./receiver.ts";

const SECRET = "8f742231b10e8888abcd99yyyzzz85a5";
const TOKEN = "xoxb-events-token";
let emu: SlackEmulator;
let app: Awaited<ReturnType<typeof startReceiver>>;

function json(body: string): Record<string, unknown> {
  return JSON.parse(body) as Record<string, unknown>;
}

beforeAll(async () => {
  app = await startReceiver(SECRET, (r) => {
    const body = r.headers["content-type"]?.includes("json") ? json(r.body) : {};
    if (body.type === "url_verification") return { status: 200, body: String(body.challenge) };
    return { status: 200 };
  });
  emu = await startSlackEmulator({
    signingSecret: SECRET,
    botToken: TOKEN,
    eventsUrl: app.url,
    clientId: "111.222",
    clientSecret: "client-secret",
    appToken: "xapp-1-A0APP00001-123-abc",
  });
});
afterAll(async () => {
  await emu.close();
  await app.close();
});
beforeEach(() => {
  emu.reset();
  app.received.length = 0;
});

describe("Events API deliveries", () => {
  it("sends a signed app_mention envelope that an independent check verifies", async () => {
    emu.addChannel({ id: "C1", name: "general" });
    const res = await emu.mention({ user: "U1", channel: "C1", text: "what's up?" });
    expect(res.status).toBe(200);
    const [req] = app.received;
    expect(req?.verified).toBe(true);
    expect(req?.headers["content-type"]).toBe("application/json");
    const envelope = json(req!.body);
    expect(envelope).toMatchObject({
      type: "event_callback",
      team_id: emu.teamId,
      api_app_id: emu.appId,
      event_id: res.deliveries[0]?.eventId,
      authorizations: [{ team_id: emu.teamId, user_id: emu.botUserId, is_bot: true }],
      event: {
        type: "app_mention",
        user: "U1",
        channel: "C1",
        text: `<@${emu.botUserId}> what's up?`,
        ts: res.ts,
        event_ts: res.ts,
      },
    });
    expect(typeof envelope.event_time).toBe("number");
    expect(emu.messages("C1", { includeUsers: true })[0]?.user).toBe("U1");
  });

  it("sends message.im for DMs and threads replies", async () => {
    const first = await emu.dm({ user: "U2", text: "hello bot" });
    const second = await emu.dm({ user: "U2", text: "more", threadTs: first.ts });
    const events = app.received.map((r) => json(r.body).event as Record<string, unknown>);
    expect(events[0]).toMatchObject({
      type: "message",
      channel_type: "im",
      user: "U2",
      text: "hello bot",
    });
    expect(events[0]?.channel).toMatch(/^D/);
    expect(events[1]).toMatchObject({ thread_ts: first.ts, ts: second.ts });
  });

  it("delivers both events when subscribed to channel messages", async () => {
    emu.subscriptions = ["app_mention", "message.channels"];
    try {
      emu.addChannel({ id: "C9" });
      const res = await emu.mention({ user: "U1", channel: "C9", text: "hi" });
      expect(res.events.map((e) => e.type)).toEqual(["app_mention", "message"]);
      expect(new Set(res.deliveries.map((d) => d.eventId)).size).toBe(2);
    } finally {
      emu.subscriptions = ["app_mention", "message.im"];
    }
  });

  it("echoes the app's own DM messages, edits and deletes like Slack", async () => {
    const client = new WebClient(TOKEN, { slackApiUrl: emu.apiUrl, logLevel: LogLevel.ERROR });
    const { channel } = await emu.dm({ user: "U3", text: "hi" });
    const posted = await client.chat.postMessage({ channel, text: "hello human" });
    await client.chat.update({ channel, ts: posted.ts!, text: "hello again" });
    await client.chat.delete({ channel, ts: posted.ts! });
    // Slack does not order deliveries; find each echo by its shape.
    const events = await emu.waitFor(() => {
      const seen = app.received.map((r) => json(r.body).event as Record<string, unknown>);
      return seen.length === 4 ? seen : undefined;
    });
    const bySubtype = (subtype: string | undefined) =>
      events.find((e) => e.subtype === subtype && e.user !== "U3");
    expect(bySubtype(undefined)).toMatchObject({
      type: "message",
      channel_type: "im",
      bot_id: emu.botId,
      user: emu.botUserId,
      text: "hello human",
    });
    expect(bySubtype("message_changed")).toMatchObject({
      message: { text: "hello again", edited: { user: emu.botUserId } },
      previous_message: { text: "hello human" },
    });
    expect(bySubtype("message_deleted")).toMatchObject({ deleted_ts: posted.ts });
  });

  it("sends nothing from channels the app is not in", async () => {
    emu.addChannel({ id: "C7", isMember: false });
    const res = await emu.mention({ user: "U1", channel: "C7", text: "anyone?" });
    expect(res.deliveries).toEqual([]);
  });

  it("marks retries and keeps the event_id", async () => {
    const event = {
      type: "app_mention",
      user: "U1",
      channel: "C1",
      text: "hi",
      ts: "1700000000.000100",
    };
    const first = await emu.sendEvent(event);
    await emu.sendEvent(event, {
      eventId: first.eventId,
      retryNum: 1,
      retryReason: "http_timeout",
    });
    const [a, b] = app.received;
    expect(a?.headers["x-slack-retry-num"]).toBeUndefined();
    expect(b?.headers["x-slack-retry-num"]).toBe("1");
    expect(b?.headers["x-slack-retry-reason"]).toBe("http_timeout");
    expect(json(b!.body).event_id).toBe(first.eventId);
    expect(b?.verified).toBe(true);
  });

  it("can forge signatures so apps can prove they refuse them", async () => {
    const event = { type: "app_mention", user: "U1", channel: "C1", text: "x" };
    expect((await emu.sendEvent(event, { forge: { secret: "wrong" } })).status).toBe(401);
    expect((await emu.sendEvent(event, { forge: { staleBySec: 6 * 60 } })).status).toBe(401);
    expect((await emu.sendEvent(event, { forge: { omitSignature: true } })).status).toBe(401);
    expect((await emu.sendEvent(event, { forge: { omitTimestamp: true } })).status).toBe(401);
    expect(app.received.map((r) => r.reason)).toEqual(["mismatch", "stale", "missing", "missing"]);
  });

  it("passes url_verification when the app echoes the challenge", async () => {
    const res = await emu.urlVerification();
    expect(res.verified).toBe(true);
    expect(app.received[0]?.verified).toBe(true);
  });

  it("reports timeouts like Slack's 3 second cutoff", async () => {
    const slow = await startReceiver(SECRET, () => ({ status: 200 }));
    const never = await new Promise<{ url: string; close: () => void }>((resolve) => {
      import("node:http").then(({ createServer }) => {
        const server = createServer(() => {
          /* never answers */
        });
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as { port: number };
          resolve({
            url: `http://127.0.0.1:${port}/`,
            close: () => {
              server.closeAllConnections();
              server.close();
            },
          });
        });
      });
    });
    try {
      const res = await emu.sendEvent({ type: "app_mention" }, { url: never.url, timeoutMs: 200 });
      expect(res).toMatchObject({ status: 0, timedOut: true });
    } finally {
      never.close();
      await slow.close();
    }
  });
});

describe("interactivity", () => {
  it("clicks a button with a signed block_actions payload and honours response_url", async () => {
    const client = new WebClient(TOKEN, { slackApiUrl: emu.apiUrl, logLevel: LogLevel.ERROR });
    emu.addChannel({ id: "C1" });
    const posted = await client.chat.postMessage({
      channel: "C1",
      text: "Approve?",
      blocks: [
        { type: "section", text: { type: "mrkdwn", text: "Approve?" } },
        {
          type: "actions",
          block_id: "approval",
          elements: [
            {
              type: "button",
              action_id: "approve",
              value: "req-1",
              text: { type: "plain_text", text: "Yes" },
            },
          ],
        },
      ],
    });
    const click = await emu.clickButton({
      user: "U1",
      channel: "C1",
      messageTs: posted.ts!,
      actionId: "approve",
    });
    expect(click.status).toBe(200);
    const req = app.received[0]!;
    expect(req.verified).toBe(true);
    expect(req.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    const payload = JSON.parse(new URLSearchParams(req.body).get("payload")!);
    expect(payload).toMatchObject({
      type: "block_actions",
      user: { id: "U1" },
      container: { type: "message", message_ts: posted.ts, channel_id: "C1" },
      channel: { id: "C1" },
      actions: [{ action_id: "approve", block_id: "approval", value: "req-1", type: "button" }],
      response_url: click.responseUrl,
      trigger_id: click.triggerId,
    });
    expect(payload.message.ts).toBe(posted.ts);

    const replaced = await fetch(click.responseUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ replace_original: true, text: "Approved by <@U1>" }),
    });
    expect(await replaced.json()).toEqual({ ok: true });
    const [msg] = emu.messages("C1");
    expect(msg?.text).toBe("Approved by <@U1>");
    expect(msg?.edits[0]?.text).toBe("Approve?");
    expect(emu.responseUrlPosts[0]?.body).toMatchObject({ replace_original: true });

    await expect(
      emu.clickButton({ user: "U1", channel: "C1", messageTs: posted.ts!, actionId: "missing" }),
    ).rejects.toThrow(/no element with action_id "missing"/);
  });

  it("sends slash commands as signed forms", async () => {
    emu.addChannel({ id: "C1" });
    const res = await emu.slashCommand({
      user: "U1",
      channel: "C1",
      command: "/lobu",
      text: "settings",
    });
    expect(res.status).toBe(200);
    const fields = new URLSearchParams(app.received[0]!.body);
    expect(fields.get("command")).toBe("/lobu");
    expect(fields.get("text")).toBe("settings");
    expect(fields.get("response_url")).toBe(res.responseUrl);
    expect(app.received[0]?.verified).toBe(true);
  });
});

describe("OAuth v2 install", () => {
  it("exchanges a code for a bot token that works for the new workspace", async () => {
    const code = emu.issueOAuthCode({
      teamId: "T0OTHER001",
      teamName: "Other Co",
      redirectUri: "https://gw/cb",
    });
    const anon = new WebClient(undefined, { slackApiUrl: emu.apiUrl, logLevel: LogLevel.ERROR });
    const res = await anon.oauth.v2.access({
      client_id: "111.222",
      client_secret: "client-secret",
      code,
      redirect_uri: "https://gw/cb",
    });
    expect(res).toMatchObject({
      ok: true,
      token_type: "bot",
      team: { id: "T0OTHER001", name: "Other Co" },
    });
    const bot = new WebClient(res.access_token, {
      slackApiUrl: emu.apiUrl,
      logLevel: LogLevel.ERROR,
    });
    expect(await bot.auth.test()).toMatchObject({
      team_id: "T0OTHER001",
      user_id: res.bot_user_id,
    });

    await expect(
      anon.oauth.v2.access({ client_id: "111.222", client_secret: "client-secret", code }),
    ).rejects.toMatchObject({ data: { error: "invalid_code" } });
    await expect(
      anon.oauth.v2.access({
        client_id: "111.222",
        client_secret: "nope",
        code: emu.issueOAuthCode(),
      }),
    ).rejects.toMatchObject({ data: { error: "bad_client_secret" } });
  });

  it("redirects from the authorize page with code and state", async () => {
    emu.setAuthorizeIdentity({ teamId: "T0AUTHZ001", teamName: "Authz" });
    const res = await fetch(
      `${emu.url}/oauth/v2/authorize?client_id=111.222&scope=chat:write,app_mentions:read&redirect_uri=${encodeURIComponent("https://gw/cb")}&state=xyz`,
      { redirect: "manual" },
    );
    expect(res.status).toBe(302);
    const location = new URL(res.headers.get("location")!);
    expect(location.origin + location.pathname).toBe("https://gw/cb");
    expect(location.searchParams.get("state")).toBe("xyz");
    const access = await new WebClient(undefined, { slackApiUrl: emu.apiUrl }).oauth.v2.access({
      client_id: "111.222",
      client_secret: "client-secret",
      code: location.searchParams.get("code")!,
      redirect_uri: "https://gw/cb",
    });
    expect(access).toMatchObject({
      team: { id: "T0AUTHZ001" },
      scope: "chat:write,app_mentions:read",
    });
  });
});

describe("Socket Mode", () => {
  let socket: SocketModeClient | undefined;
  afterEach(async () => {
    await socket?.disconnect();
    socket = undefined;
  });

  it("delivers envelopes that the SDK acknowledges", async () => {
    socket = new SocketModeClient({
      appToken: "xapp-1-A0APP00001-123-abc",
      logLevel: LogLevel.ERROR,
      clientOptions: { slackApiUrl: emu.apiUrl },
    });
    const seen: Record<string, unknown>[] = [];
    socket.on("app_mention", async ({ event, ack }) => {
      seen.push(event);
      await ack();
    });
    await socket.start();
    expect(emu.socketConnections).toBe(1);

    const res = await emu.mention(
      { user: "U1", channel: "C1", text: "over the socket" },
      { via: "socket" },
    );
    expect(res.status).toBe(200);
    expect(res.deliveries[0]?.envelopeId).toBeTruthy();
    expect(seen[0]).toMatchObject({
      type: "app_mention",
      text: `<@${emu.botUserId}> over the socket`,
    });
    expect(emu.deliveries.at(-1)).toMatchObject({ via: "socket", kind: "event" });
  });

  it("makes the SDK reconnect after a disconnect message", async () => {
    socket = new SocketModeClient({
      appToken: "xapp-1-A0APP00001-123-abc",
      logLevel: LogLevel.ERROR,
      // The SDK waits this long before reconnecting.
      clientPingTimeout: 500,
      clientOptions: { slackApiUrl: emu.apiUrl },
    });
    socket.on("app_mention", async ({ ack }) => ack());
    await socket.start();
    const opened = emu.calls.length;
    emu.disconnectSocket("refresh_requested");
    await emu.waitForCall("apps.connections.open", () => true, { since: opened });
    await emu.waitFor(() => emu.socketConnections === 1);
    const res = await emu.mention(
      { user: "U1", channel: "C1", text: "still there?" },
      { via: "socket" },
    );
    expect(res.status).toBe(200);
  });

  it("reports unacknowledged envelopes as timed out", async () => {
    socket = new SocketModeClient({
      appToken: "xapp-1-A0APP00001-123-abc",
      logLevel: LogLevel.ERROR,
      clientOptions: { slackApiUrl: emu.apiUrl },
    });
    socket.on("app_mention", () => {
      /* never acks */
    });
    await socket.start();
    const res = await emu.sendEvent({ type: "app_mention" }, { via: "socket", timeoutMs: 100 });
    expect(res).toMatchObject({ status: 0, timedOut: true });
  });

  it("refuses bot tokens for apps.connections.open", async () => {
    const client = new WebClient(TOKEN, { slackApiUrl: emu.apiUrl, logLevel: LogLevel.ERROR });
    await expect(client.apps.connections.open()).rejects.toMatchObject({
      data: { error: "not_allowed_token_type" },
    });
  });
});
