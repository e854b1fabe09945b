import {
  type GatewayProcess,
  type MockLlm,
  type SlackEmulator,
  type SlackMessage,
  startGatewayProcess,
  startMockLlm,
  startSlackEmulator,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiSettingsLink, eventReader, openSettings } from "../settings/helpers.ts";

/**
 * In-thread approvals end to end: a real `lobu run`, real sandboxed workers,
 * the mock LLM scripting tool calls. An "ask" tool pauses on a card; Approve
 * runs it, Deny stops it with a clear message to the agent, Always allow is
 * remembered in the person's settings, and an unanswered card expires.
 */

const KEY = "sk-ant-approvals-0123456789abcdef";
const SIGNING_SECRET = "slack-signing-secret-approvals";
const BOT_TOKEN = "xoxb-3333-4444-approvals";
let llm: MockLlm;
let slack: SlackEmulator;
let gw: GatewayProcess;

function send(agent: string, user: string, text: string, channel = "dev") {
  return gw.api(`/api/v1/agents/${agent}/messages`, {
    method: "POST",
    headers: { accept: "text/event-stream" },
    body: JSON.stringify({ user, channel, text }),
  });
}

function answer(requestId: string, choice: string) {
  return gw.api(`/api/v1/requests/${requestId}/answer`, {
    method: "POST",
    body: JSON.stringify({ choice }),
  });
}

/** The tool result the model received in the last round for `text`. */
function toolResultFor(text: string) {
  const round = llm.requests.filter((r) => r.lastUserText === text).at(-1);
  return round?.toolResults[0];
}

function scriptBash(text: string, command: string) {
  llm.when(
    (r) => r.lastUserText === text,
    { toolCalls: [{ name: "bash", input: { command } }] },
    (r) => ({ text: r.toolResults[0]?.isError ? "I did not run it." : "Ran it." }),
  );
}

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: KEY });
  slack = await startSlackEmulator({
    signingSecret: SIGNING_SECRET,
    botToken: BOT_TOKEN,
    botName: "lobu",
    subscriptions: ["app_mention", "message.im"],
  });
  gw = await startGatewayProcess({
    toml: [
      "[sandbox]",
      'idle_timeout = "10m"',
      "",
      "[agents.default.policy]",
      'tools = { bash = "ask" }',
      "",
      "[agents.hasty]",
      'name = "Hasty"',
      "[agents.hasty.policy]",
      'tools = { bash = "ask" }',
      'request_timeout = "2s"',
      "",
      "[platforms.slack]",
      'stream_interval = "200ms"',
    ].join("\n"),
    env: {
      ANTHROPIC_API_KEY: KEY,
      ANTHROPIC_BASE_URL: llm.url,
      OPENAI_API_KEY: undefined,
      SLACK_BOT_TOKEN: BOT_TOKEN,
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_API_URL: slack.apiUrl,
    },
  });
  slack.eventsUrl = `${gw.url}/slack/events`;
});

afterAll(async () => {
  await gw?.stop();
  await slack?.close();
  await llm?.close();
});

describe("approvals over the REST channel", () => {
  it("pauses an 'ask' tool until Approve, then runs it", async () => {
    scriptBash("run it please", "echo approved-output");
    const events = eventReader(await send("default", "alice", "run it please"));
    const card = await events.until("approval_request");
    expect(card).toMatchObject({ tool: "bash", display: "command: echo approved-output" });
    // Nothing ran yet: the model has not received a tool result.
    expect(toolResultFor("run it please")).toBeUndefined();

    const res = await answer(card.requestId as string, "approve");
    expect(res.status).toBe(200);
    const rest = await events.rest();
    expect(rest).toContainEqual(
      expect.objectContaining({
        type: "request_resolved",
        requestId: card.requestId,
        outcome: "approve",
      }),
    );
    expect(rest.at(-1)).toMatchObject({ type: "done", text: "Ran it." });
    expect(toolResultFor("run it please")).toMatchObject({ isError: false });
    expect(toolResultFor("run it please")?.content).toContain("approved-output");
    // Answered once: a second click is refused.
    expect((await answer(card.requestId as string, "deny")).status).toBe(409);
  });

  it("stops the tool on Deny and tells the agent clearly", async () => {
    scriptBash("delete everything", "echo should-not-run > denied.txt");
    const events = eventReader(await send("default", "alice", "delete everything"));
    const card = await events.until("approval_request");
    expect((await answer(card.requestId as string, "deny")).status).toBe(200);
    const rest = await events.rest();
    expect(rest.at(-1)).toMatchObject({ type: "done", text: "I did not run it." });
    const result = toolResultFor("delete everything")!;
    expect(result.isError).toBe(true);
    expect(result.content).toContain("The user denied this action.");
    expect(result.content).toContain("The bash call was not run");
    expect(result.content).not.toContain("should-not-run\n");
  });

  it("remembers Always allow in the person's settings", async () => {
    scriptBash("always ok", "echo always-output");
    const events = eventReader(await send("default", "bob", "always ok"));
    const card = await events.until("approval_request");
    expect((await answer(card.requestId as string, "always")).status).toBe(200);
    await events.rest();
    expect(toolResultFor("always ok")?.content).toContain("always-output");

    // Persisted for the person (not only in the worker's memory)...
    const me = await openSettings(gw, await apiSettingsLink(gw, "bob"));
    const state = (await (await me.call("GET", "/state")).json()) as {
      tools: { name: string; effective: string; userChoice?: string }[];
    };
    expect(state.tools.find((t) => t.name === "bash")).toMatchObject({
      effective: "allow",
      userChoice: "allow",
    });
    // ...so a fresh sandbox (another channel) runs bash without asking.
    scriptBash("again elsewhere", "echo no-card-needed");
    const second = eventReader(await send("default", "bob", "again elsewhere", "elsewhere"));
    const all = await second.rest();
    expect(all.some((e) => e.type === "approval_request")).toBe(false);
    expect(toolResultFor("again elsewhere")?.content).toContain("no-card-needed");
    // Someone else still gets asked.
    scriptBash("carol asks", "echo carol-output");
    const carol = eventReader(await send("default", "carol", "carol asks"));
    const carolCard = await carol.until("approval_request");
    await answer(carolCard.requestId as string, "approve");
    await carol.rest();
  });

  it("puts every decision in the audit log", async () => {
    const res = await gw.api("/api/v1/audit?action=approval_request.answered&limit=50");
    const records = (
      (await res.json()) as { records: { details: { choice: string; tool: string } }[] }
    ).records;
    const choices = records.map((r) => r.details.choice);
    expect(choices).toEqual(expect.arrayContaining(["approve", "deny", "always"]));
    expect(records.every((r) => r.details.tool === "bash")).toBe(true);
  });

  it("expires an unanswered approval: the agent is told and the card closes", async () => {
    scriptBash("nobody answers", "echo too-late");
    const events = eventReader(await send("hasty", "dana", "nobody answers"));
    const card = await events.until("approval_request");
    const resolved = await events.until("request_resolved");
    expect(resolved).toMatchObject({ requestId: card.requestId, outcome: "expired" });
    const rest = await events.rest();
    expect(rest.at(-1)).toMatchObject({ type: "done", text: "I did not run it." });
    const result = toolResultFor("nobody answers")!;
    expect(result.isError).toBe(true);
    expect(result.content).toContain("No approval arrived in time.");
    // A late answer is refused instead of reaching a worker that stopped waiting.
    const late = await answer(card.requestId as string, "approve");
    expect(late.status).toBe(409);
    expect(JSON.stringify(await late.json())).toContain("expired");
  });
});

describe("approvals in Slack", () => {
  /** A card's buttons; the streaming reply's Stop buttons (docs/using.md) are not a card. */
  function actionIds(m: SlackMessage | undefined): string[] {
    return (m?.blocks ?? [])
      .filter((b) => (b as { type?: string }).type === "actions")
      .flatMap((b) => (b as { elements: { action_id: string }[] }).elements.map((e) => e.action_id))
      .filter((id) => !id.startsWith("lobu-stop"));
  }

  it("remembers Always allow clicked on a Slack card", async () => {
    const im = slack.imChannel("UALWAYS");
    scriptBash("slack always", "echo slack-always-output");
    await slack.dm({ user: "UALWAYS", text: "slack always" });
    const card = await slack.waitFor(
      () => slack.messages(im.id).find((m) => actionIds(m).some((id) => id.endsWith(":always"))),
      { timeoutMs: 30_000, description: "the approval card" },
    );
    await slack.clickButton({
      user: "UALWAYS",
      channel: im.id,
      messageTs: card.ts,
      actionId: actionIds(card).find((id) => id.endsWith(":always"))!,
    });
    await slack.waitFor(() => toolResultFor("slack always"), {
      timeoutMs: 30_000,
      description: "the tool result",
    });
    expect(toolResultFor("slack always")?.content).toContain("slack-always-output");
    const records = (
      (await (await gw.api("/api/v1/audit?action=approval_request.answered&limit=50")).json()) as {
        records: { actor: string; details: { choice: string } }[];
      }
    ).records;
    const decision = records.find(
      (r) => r.actor.startsWith("slack:") && r.actor.endsWith(":UALWAYS"),
    );
    expect(decision?.details.choice).toBe("always");

    // Persisted for that Slack person: a fresh sandbox (a channel thread) runs bash unasked.
    const channel = slack.addChannel({ name: "always-elsewhere" });
    scriptBash("slack again", "echo slack-again-output");
    const sent = await slack.mention({ user: "UALWAYS", channel: channel.id, text: "slack again" });
    const cardAgain = () =>
      slack.messages(channel.id, { threadTs: sent.ts }).find((m) => actionIds(m).length > 0);
    await slack.waitFor(() => toolResultFor("slack again") ?? cardAgain(), {
      timeoutMs: 30_000,
      description: "the second tool result (or a card)",
    });
    expect(cardAgain(), "asked again: Always allow was not remembered").toBeUndefined();
    expect(toolResultFor("slack again")?.content).toContain("slack-again-output");
  });
});
