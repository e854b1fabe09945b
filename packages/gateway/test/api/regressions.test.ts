import { newId } from "@lobu/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Origin } from "../../src/domain/origin.ts";
import { type ApiGateway, startApiGateway } from "./helpers.ts";

/**
 * The review's findings against API token roles, as an attacker holding a
 * `client` token (an app integrating Lobu) would try them.
 */

let api: ApiGateway;
let client: string;

const slackAlice: Origin = {
  platform: "slack",
  workspace: "T0001",
  channelId: "D0001",
  userId: "U0ALICE",
  userName: "Alice",
  isDirect: true,
};

beforeAll(async () => {
  api = await startApiGateway({
    agents: { default: { tools: ["bash", "read"], policy: { tools: { bash: "ask" } } } },
    admin: { users: ["api::boss"] },
  });
  client = (await api.token({ name: "app", role: "client" })).token;
});
afterAll(() => api?.close());

/** A Slack user's conversation, made through the entrance the Slack adapter uses. */
async function slackConversation(text: string) {
  const result = await api.gw.services.inbound.submit({
    agentId: "default",
    origin: slackAlice,
    text,
    eventId: newId("evt"),
  });
  return { conversationId: result.conversationId!, messageId: result.messageId! };
}

/** A pending approval of `origin`'s turn, registered as the turn runner does. */
async function pendingApproval(origin: Origin, tool = "bash") {
  const requestId = newId("rq");
  await api.gw.services.requests.register(
    {
      requestId,
      messageId: newId("msg"),
      sandboxId: "sb_test",
      agentId: "default",
      origin,
      event: { type: "approval_request", requestId, tool, input: {}, summary: `Run ${tool}` },
    },
    600_000,
  );
  return requestId;
}

describe("client tokens and other platforms' people", () => {
  it("cannot list or read a Slack user's conversations", async () => {
    const { conversationId, messageId } = await slackConversation("my private notes");
    const list = await api.call(client, "GET", "/api/v1/agents/default/conversations");
    expect(list.status).toBe(200);
    const ids = ((await list.json()) as { conversations: { id: string }[] }).conversations.map(
      (c) => c.id,
    );
    expect(ids).not.toContain(conversationId);
    for (const path of [
      `/api/v1/conversations/${conversationId}/messages`,
      `/api/v1/messages/${messageId}`,
      `/api/v1/messages/${messageId}/events`,
    ]) {
      const res = await api.call(client, "GET", path);
      expect(res.status, path).toBe(403);
      expect(await res.text(), path).not.toContain("my private notes");
    }
  });

  it("cannot answer a Slack user's approval, least of all with 'always'", async () => {
    const requestId = await pendingApproval(slackAlice);
    const res = await api.call(client, "POST", `/api/v1/requests/${requestId}/answer`, {
      choice: "always",
    });
    expect(res.status).toBe(403);
    const settings = await api.gw.services.userSettings.get("default", "slack:T0001:U0ALICE");
    expect(settings.toolPolicy).toEqual({});
    expect((await api.gw.services.requests.get(requestId))?.status).toBe("pending");
  });

  it("answers its own user's approval as that user: no 'always' the user could not choose", async () => {
    // A tool the agent does not offer the person to settle (not in its tools, or not "ask").
    const me = await api.call(client, "GET", "/api/v1/info");
    const { caller } = (await me.json()) as { caller: { namespace: string } };
    const origin: Origin = {
      platform: "api",
      workspace: caller.namespace,
      channelId: "default",
      userId: "carol",
      isDirect: true,
    };
    const requestId = await pendingApproval(origin, "deploy");
    const always = await api.call(client, "POST", `/api/v1/requests/${requestId}/answer`, {
      choice: "always",
    });
    expect(always.status).toBe(403);
    expect(((await always.json()) as { error: { message: string } }).error.message).toMatch(
      /always/,
    );
    const approve = await api.call(client, "POST", `/api/v1/requests/${requestId}/answer`, {
      choice: "approve",
    });
    expect(approve.status).toBe(200);
  });

  it("mints settings links that never open the admin UI", async () => {
    const res = await api.call(client, "POST", "/api/v1/settings-links", { user: "boss" });
    expect(res.status).toBe(201);
    const { url } = (await res.json()) as { url: string };
    const claimed = await fetch(url, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "fragment=",
    });
    const cookie = claimed.headers
      .getSetCookie()
      .find((c) => c.startsWith("lobu_settings="))!
      .split(";")[0]!;
    const info = (await (
      await fetch(`${api.url}/settings/api/session`, { headers: { cookie } })
    ).json()) as { csrf: string; userKey: string };
    expect(info.userKey).not.toBe("api::boss");
    const login = await fetch(`${api.url}/settings/api/admin-login`, {
      method: "POST",
      headers: { cookie, "x-csrf-token": info.csrf, "content-type": "application/json" },
      body: "{}",
    });
    expect(login.status).toBe(403);
    expect(login.headers.getSetCookie().some((c) => c.startsWith("lobu_admin="))).toBe(false);
  });
});

describe("query parameters", () => {
  it("refuses negative, non-numeric and huge limits with a 400 naming the parameter", async () => {
    for (const limit of ["-1", "abc", "1e9", "0", "2.5", "100000"]) {
      const res = await api.call(
        api.adminToken,
        "GET",
        `/api/v1/agents/default/conversations?limit=${limit}`,
      );
      expect(res.status, limit).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message).toContain(
        "limit",
      );
    }
  });
});
