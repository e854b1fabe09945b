import {
  ErrorCode,
  type WebAPIRateLimitedError,
  type WebClient,
  WebClientEvent,
} from "@slack/web-api";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type SlackEmulator, startSlackEmulator } from "../../src/platforms.ts";
import { startReceiver } from "./receiver.ts";
import { emulatorClient, platformError } from "./web-client.ts";

const TOKEN = "xoxb-test-token";
let emu: SlackEmulator;
let client: WebClient;
let app: Awaited<ReturnType<typeof startReceiver>>;

function webClient(token = TOKEN, extra: Parameters<typeof emulatorClient>[2] = {}) {
  return emulatorClient(emu, token, extra);
}

beforeAll(async () => {
  app = await startReceiver("s3cret");
  emu = await startSlackEmulator({ signingSecret: "s3cret", botToken: TOKEN, eventsUrl: app.url });
  client = webClient();
});
afterAll(async () => {
  await emu.close();
  await app.close();
});
beforeEach(() => {
  emu.reset();
  emu.addChannel({ id: "C1", name: "general" });
  emu.addUser({ id: "U1", name: "alice" });
});

describe("Slack Web API through WebClient", () => {
  it("auth.test identifies the bot and reports scopes", async () => {
    const res = await client.auth.test();
    expect(res).toMatchObject({
      ok: true,
      team_id: emu.teamId,
      user_id: emu.botUserId,
      bot_id: emu.botId,
      url: "https://lobu-test.slack.com/",
    });
    expect(res.response_metadata?.scopes).toContain("chat:write");
    expect(emu.calls[0]).toMatchObject({
      method: "auth.test",
      token: TOKEN,
      tokenSource: "header",
    });
  });

  it("posts blocks, updates, and keeps the edit history", async () => {
    const posted = await client.chat.postMessage({
      channel: "C1",
      text: "fallback",
      blocks: [
        { type: "section", text: { type: "mrkdwn", text: "*hello*" } },
        {
          type: "actions",
          elements: [{ type: "button", text: { type: "plain_text", text: "OK" }, value: "yes" }],
        },
      ],
    });
    expect(posted.ts).toMatch(/^\d{10}\.\d{6}$/);
    const blocks = posted.message?.blocks as {
      block_id?: string;
      elements?: { action_id?: string }[];
    }[];
    expect(blocks[0]?.block_id).toBeTruthy();
    expect(blocks[1]?.elements?.[0]?.action_id).toBeTruthy();

    const updated = await client.chat.update({ channel: "C1", ts: posted.ts!, text: "second" });
    expect(updated.text).toBe("second");
    const [message] = emu.messages("C1");
    expect(message?.text).toBe("second");
    expect(message?.blocks).toHaveLength(2); // omitted blocks are kept
    expect(message?.edits.map((e) => e.text)).toEqual(["fallback"]);
    expect(message?.editedTs).toBeTruthy();

    const second = await client.chat.postMessage({ channel: "C1", text: "later" });
    expect(Number(second.ts)).toBeGreaterThan(Number(posted.ts));
  });

  it("threads replies and broadcasts", async () => {
    const { ts } = await emu.mention({ user: "U1", channel: "C1", text: "hi" }, { deliver: false });
    await client.chat.postMessage({
      channel: "C1",
      thread_ts: ts,
      text: "reply",
      reply_broadcast: true,
    });
    const thread = emu.messages("C1", { threadTs: ts });
    expect(thread).toHaveLength(1);
    expect(thread[0]).toMatchObject({ threadTs: ts, replyBroadcast: true, text: "reply" });
    const replies = await client.conversations.replies({ channel: "C1", ts });
    expect(replies.messages?.map((m) => m.text)).toEqual([`<@${emu.botUserId}> hi`, "reply"]);
    expect(replies.messages?.[0]?.reply_count).toBe(1);
    const history = await client.conversations.history({ channel: "C1" });
    expect(history.messages?.map((m) => m.text)).toEqual(["reply", `<@${emu.botUserId}> hi`]);
  });

  it("rejects bad tokens with typed platform errors", async () => {
    const err = await platformError(webClient("xoxb-wrong").auth.test());
    expect(err.code).toBe(ErrorCode.PlatformError);
    expect(err.data.error).toBe("invalid_auth");

    emu.revokeToken(TOKEN);
    const revoked = await platformError(client.auth.test());
    expect(revoked.data.error).toBe("token_revoked");
    emu.installations[0]!.revoked = false;
  });

  it("accepts form tokens in the body but not JSON-body tokens", async () => {
    const form = await fetch(`${emu.apiUrl}auth.test`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `token=${TOKEN}`,
    });
    expect(await form.json()).toMatchObject({ ok: true });

    const jsonBodyToken = await fetch(`${emu.apiUrl}auth.test`, {
      method: "POST",
      headers: { "content-type": "application/json; charset=utf-8" },
      body: JSON.stringify({ token: TOKEN }),
    });
    expect(await jsonBodyToken.json()).toEqual({ ok: false, error: "not_authed" });

    const json = await fetch(`${emu.apiUrl}chat.postMessage`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ channel: "C1", text: "json" }),
    });
    expect(json.status).toBe(200);
    expect(await json.json()).toMatchObject({
      ok: true,
      warning: "missing_charset",
      response_metadata: { warnings: ["missing_charset"] },
    });

    const unknown = await fetch(`${emu.apiUrl}chat.frobnicate`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(await unknown.json()).toEqual({
      ok: false,
      error: "unknown_method",
      req_method: "chat.frobnicate",
    });
  });

  it("validates messages like Slack", async () => {
    const errorOf = async (args: Record<string, unknown>) =>
      (await platformError(client.apiCall("chat.postMessage", args))).data;

    expect((await errorOf({ channel: "C404", text: "x" })).error).toBe("channel_not_found");
    expect((await errorOf({ channel: "C1" })).error).toBe("no_text");
    expect((await errorOf({ channel: "C1", text: "x".repeat(40_001) })).error).toBe("msg_too_long");
    expect((await errorOf({ channel: "C1", text: "x", blocks: "not json" })).error).toBe(
      "invalid_blocks_format",
    );

    const long = await errorOf({
      channel: "C1",
      text: "x",
      blocks: [{ type: "section", text: { type: "mrkdwn", text: "y".repeat(3001) } }],
    });
    expect(long.error).toBe("invalid_blocks");
    expect(long.response_metadata?.messages).toContain(
      "[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]",
    );

    const tooMany = await errorOf({
      channel: "C1",
      text: "x",
      blocks: Array.from({ length: 51 }, () => ({ type: "divider" })),
    });
    expect(tooMany.error).toBe("invalid_blocks");

    const untyped = await errorOf({ channel: "C1", text: "x", blocks: [{ text: "no type" }] });
    expect(untyped.error).toBe("invalid_blocks");

    emu.addChannel({ id: "C2", isMember: false });
    expect((await errorOf({ channel: "C2", text: "x" })).error).toBe("not_in_channel");
  });

  it("retries after a 429 with Retry-After", async () => {
    emu.forceRateLimit("chat.postMessage", { retryAfter: 1 });
    const rateLimited: number[] = [];
    const retrying = webClient(TOKEN, {
      retryConfig: { retries: 2, factor: 1, minTimeout: 0, maxTimeout: 0 },
    });
    retrying.on(WebClientEvent.RATE_LIMITED, (sec: number) => rateLimited.push(sec));
    const res = await retrying.chat.postMessage({ channel: "C1", text: "eventually" });
    expect(res.ok).toBe(true);
    expect(rateLimited).toEqual([1]);
    expect(emu.calls.map((c) => c.httpStatus)).toEqual([429, 200]);
    expect(emu.calls[0]?.response).toEqual({ ok: false, error: "ratelimited" });

    emu.forceRateLimit("chat.postMessage", { retryAfter: 7 });
    const rejecting = webClient(TOKEN, { rejectRateLimitedCalls: true });
    try {
      await rejecting.chat.postMessage({ channel: "C1", text: "no" });
      expect.unreachable();
    } catch (err) {
      expect((err as WebAPIRateLimitedError).code).toBe(ErrorCode.RateLimitedError);
      expect((err as WebAPIRateLimitedError).retryAfter).toBe(7);
    }
  });

  it("counts tier limits per method", async () => {
    const limited = await startSlackEmulator({
      signingSecret: "s",
      botToken: TOKEN,
      rateLimits: { "users.info": { limit: 2, windowMs: 60_000 } },
    });
    try {
      const c = emulatorClient(limited, TOKEN, { rejectRateLimitedCalls: true });
      await c.users.info({ user: limited.botUserId });
      await c.users.info({ user: limited.botUserId });
      await expect(c.users.info({ user: limited.botUserId })).rejects.toMatchObject({
        code: ErrorCode.RateLimitedError,
      });
    } finally {
      await limited.close();
    }
  });

  it("uploads files with filesUploadV2 and serves them to token holders", async () => {
    const { ts } = await emu.mention(
      { user: "U1", channel: "C1", text: "file please" },
      { deliver: false },
    );
    const res = await client.filesUploadV2({
      channel_id: "C1",
      thread_ts: ts,
      initial_comment: "here you go",
      filename: "report.txt",
      content: "the report",
    });
    expect(res.ok).toBe(true);
    const [upload] = emu.uploads;
    expect(upload?.data.toString()).toBe("the report");
    expect(upload).toMatchObject({ name: "report.txt", channel: "C1", threadTs: ts });
    const [reply] = emu.messages("C1", { threadTs: ts });
    expect(reply?.text).toBe("here you go");
    expect(reply?.files[0]?.id).toBe(upload?.id);

    const info = await client.files.info({ file: upload!.id });
    const urlPrivate = info.file?.url_private as string;
    const authed = await fetch(urlPrivate, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(await authed.text()).toBe("the report");
    const anonymous = await fetch(urlPrivate);
    expect(anonymous.headers.get("content-type")).toContain("text/html");
  });

  it("refuses file calls without the files scopes, as Slack does", async () => {
    const [install] = emu.installations;
    const scopes = install!.scopes;
    const upload = await client.filesUploadV2({
      channel_id: "C1",
      filename: "a.txt",
      content: "a",
    });
    expect(upload.ok).toBe(true);
    const url = emu.uploads.at(-1)!;
    const fileUrl = `${emu.baseUrl}/files-pri/${url.teamId}-${url.id}/download/a.txt`;
    install!.scopes = scopes.filter((s) => !s.startsWith("files:"));
    try {
      const refused = await platformError(
        client.filesUploadV2({ channel_id: "C1", filename: "b.txt", content: "b" }),
      );
      expect(refused.data).toMatchObject({ error: "missing_scope", needed: "files:write" });
      // A download without files:read gets the sign-in page, not the file.
      const page = await fetch(fileUrl, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(page.headers.get("content-type")).toContain("text/html");
    } finally {
      install!.scopes = scopes;
    }
    const file = await fetch(fileUrl, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(await file.text()).toBe("a");
  });

  it("handles reactions, permalinks, ephemeral messages, deletes and lookups", async () => {
    const { ts } = await client.chat.postMessage({ channel: "C1", text: "react to me" });
    await client.reactions.add({ channel: "C1", timestamp: ts!, name: "eyes" });
    expect(
      (await platformError(client.reactions.add({ channel: "C1", timestamp: ts!, name: "eyes" })))
        .data.error,
    ).toBe("already_reacted");
    expect(emu.message("C1", ts!)?.reactions).toEqual([{ name: "eyes", users: [emu.botUserId] }]);
    await client.reactions.remove({ channel: "C1", timestamp: ts!, name: "eyes" });
    expect(
      (
        await platformError(
          client.reactions.remove({ channel: "C1", timestamp: ts!, name: "eyes" }),
        )
      ).data.error,
    ).toBe("no_reaction");

    const link = await client.chat.getPermalink({ channel: "C1", message_ts: ts! });
    expect(link.permalink).toBe(`https://lobu-test.slack.com/archives/C1/p${ts!.replace(".", "")}`);

    const eph = await client.chat.postEphemeral({ channel: "C1", user: "U1", text: "only you" });
    expect(eph.message_ts).toBeTruthy();
    expect(emu.ephemerals).toMatchObject([{ user: "U1", text: "only you" }]);

    await client.chat.delete({ channel: "C1", ts: ts! });
    expect(emu.messages("C1")).toHaveLength(0);
    expect((await platformError(client.chat.delete({ channel: "C1", ts: ts! }))).data.error).toBe(
      "message_not_found",
    );

    expect((await client.users.info({ user: "U1" })).user).toMatchObject({
      id: "U1",
      name: "alice",
    });
    expect((await platformError(client.users.info({ user: "U404" }))).data.error).toBe(
      "user_not_found",
    );
    expect((await client.conversations.info({ channel: "C1" })).channel).toMatchObject({
      id: "C1",
      name: "general",
      is_channel: true,
      is_member: true,
    });

    const dm = await client.chat.postMessage({ channel: "U1", text: "psst" });
    expect(dm.channel).toMatch(/^D/);
    expect(emu.messages(emu.imChannel("U1").id)).toHaveLength(1);
  });

  it("injects failures", async () => {
    emu.failNext("chat.update", "edit_window_closed");
    const { ts } = await client.chat.postMessage({ channel: "C1", text: "a" });
    expect(
      (await platformError(client.chat.update({ channel: "C1", ts: ts!, text: "b" }))).data.error,
    ).toBe("edit_window_closed");
    await client.chat.update({ channel: "C1", ts: ts!, text: "b" });

    emu.failNext("auth.test", { status: 503 });
    await expect(client.auth.test()).rejects.toMatchObject({
      code: ErrorCode.HTTPError,
      statusCode: 503,
    });
    emu.failNext("auth.test", { network: true });
    await expect(client.auth.test()).rejects.toMatchObject({ code: ErrorCode.RequestError });
  });

  it("streams messages with chat.startStream / appendStream / stopStream", async () => {
    const { ts } = await emu.mention(
      { user: "U1", channel: "C1", text: "stream" },
      { deliver: false },
    );
    // Outside a DM, Slack needs the recipient of a streamed message.
    const streamer = client.chatStream({
      channel: "C1",
      thread_ts: ts,
      buffer_size: 4,
      recipient_user_id: "U1",
      recipient_team_id: emu.teamId,
    });
    await streamer.append({ markdown_text: "Hello" });
    await streamer.append({ markdown_text: " world" });
    await streamer.stop({ markdown_text: "!" });
    const [msg] = emu.messages("C1", { threadTs: ts });
    expect(msg).toMatchObject({
      text: "Hello world!",
      streaming: "completed",
      postedVia: "chat.startStream",
    });
  });

  it("opens views only with a fresh trigger_id and publishes home tabs", async () => {
    const view = {
      type: "modal" as const,
      title: { type: "plain_text" as const, text: "Settings" },
      blocks: [{ type: "section", text: { type: "mrkdwn", text: "hi" } }],
    };
    expect((await platformError(client.views.open({ trigger_id: "nope", view }))).data.error).toBe(
      "invalid_trigger_id",
    );
    const { ts } = await client.chat.postMessage({
      channel: "C1",
      text: "open",
      blocks: [
        {
          type: "actions",
          elements: [
            { type: "button", action_id: "open", text: { type: "plain_text", text: "Open" } },
          ],
        },
      ],
    });
    const click = await emu.clickButton({
      user: "U1",
      channel: "C1",
      messageTs: ts!,
      actionId: "open",
    });
    const opened = await client.views.open({ trigger_id: click.triggerId, view });
    expect(opened.view?.id).toMatch(/^V/);
    expect(emu.views[0]).toMatchObject({ method: "views.open", triggerId: click.triggerId });

    const tooLong = await platformError(
      client.views.publish({
        user_id: "U1",
        view: { type: "home", blocks: [{ type: "bogus" }] } as never,
      }),
    );
    expect(tooLong.data.error).toBe("invalid_arguments");
    await client.views.publish({ user_id: "U1", view: { type: "home", blocks: [] } });
    expect(emu.views.at(-1)).toMatchObject({ method: "views.publish", userId: "U1" });
  });

  it("waits for calls without polling", async () => {
    const waiting = emu.waitForCall("chat.postMessage", (c) => c.args.text === "needle");
    await client.chat.postMessage({ channel: "C1", text: "hay" });
    await client.chat.postMessage({ channel: "C1", text: "needle" });
    expect((await waiting).args.channel).toBe("C1");
  });
});

describe("people, Slack Connect channels and user groups", () => {
  it("users.info shows guests, deactivated accounts, admins and the email (users:read.email)", async () => {
    emu.addUser({ id: "UGUEST", email: "g@example.com", guest: "single" });
    emu.addUser({ id: "UMULTI", guest: "multi" });
    emu.addUser({ id: "UGONE", deleted: true });
    emu.addUser({ id: "UBOSS", owner: true });
    const info = async (user: string) =>
      (await client.users.info({ user })).user as Record<string, unknown> & {
        profile: { email?: string };
      };
    expect(await info("UGUEST")).toMatchObject({
      is_restricted: true,
      is_ultra_restricted: true,
      profile: { email: "g@example.com" },
    });
    expect(await info("UMULTI")).toMatchObject({ is_restricted: true, is_ultra_restricted: false });
    expect(await info("UGONE")).toMatchObject({ deleted: true });
    expect(await info("UBOSS")).toMatchObject({ is_admin: true, is_owner: true });
  });

  it("a Slack Connect channel: conversations.info says so, its outsiders are visible, events name their team", async () => {
    const shared = emu.addChannel({ name: "partners", sharedWith: ["TPARTNER"] });
    emu.addUser({ id: "UPARTNER", teamId: "TPARTNER" });
    const { channel } = await client.conversations.info({ channel: shared.id });
    expect(channel).toMatchObject({
      is_ext_shared: true,
      is_shared: true,
      shared_team_ids: [emu.teamId, "TPARTNER"],
    });
    expect((await client.users.info({ user: "UPARTNER" })).user?.team_id).toBe("TPARTNER");
    const sent = await emu.mention({ user: "UPARTNER", channel: shared.id, text: "hi" });
    // Delivered to the channel's workspace, naming the sender's own.
    expect(sent.events[0]).toMatchObject({ team: "TPARTNER", user_team: "TPARTNER" });
    // A stranger sharing no channel stays invisible.
    emu.addUser({ id: "USTRANGER", teamId: "TOTHER" });
    expect((await platformError(client.users.info({ user: "USTRANGER" }))).data.error).toBe(
      "user_not_found",
    );
  });

  it("usergroups.users.list lists a group's members, in its own workspace only", async () => {
    const group = emu.addUserGroup({ handle: "oncall", users: ["U1", "U2"] });
    expect((await client.usergroups.users.list({ usergroup: group.id })).users).toEqual([
      "U1",
      "U2",
    ]);
    const elsewhere = emu.addUserGroup({ handle: "x", users: ["U9"], teamId: "TOTHER" });
    expect(
      (await platformError(client.usergroups.users.list({ usergroup: elsewhere.id }))).data.error,
    ).toBe("no_such_subteam");
  });

  it("chat.postMessage takes a username and icon with chat:write.customize", async () => {
    const ch = emu.addChannel({ name: "persona" });
    const res = await client.chat.postMessage({
      channel: ch.id,
      text: "hello",
      username: "Helper",
      icon_url: "https://example.com/h.png",
    });
    expect(emu.message(ch.id, res.ts as string)).toMatchObject({
      username: "Helper",
      iconUrl: "https://example.com/h.png",
    });
    expect(res.message).toMatchObject({ username: "Helper" });
  });
});

describe("conversations.info scopes", () => {
  it("wants the read scope of the conversation's kind", async () => {
    const install = emu.install({
      teamId: "TNARROW",
      teamName: "Narrow",
      userId: "UNARROW",
      scopes: ["chat:write", "channels:read"],
      userScopes: [],
      used: true,
    });
    const narrow = webClient(install.token);
    const open = emu.addChannel({ name: "open", teamId: "TNARROW" });
    const closed = emu.addChannel({ name: "closed", type: "private", teamId: "TNARROW" });
    expect((await narrow.conversations.info({ channel: open.id })).ok).toBe(true);
    const err = await platformError(narrow.conversations.info({ channel: closed.id }));
    expect(err.data).toMatchObject({ error: "missing_scope", needed: "groups:read" });
  });
});
