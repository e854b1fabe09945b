import { spawn } from "node:child_process";
import {
  type GatewayProcess,
  LOBU_BIN,
  type MockLlm,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiSettingsLink, eventReader, openSettings } from "../settings/helpers.ts";

/**
 * Mid-conversation capability requests end to end: the agent calls
 * request_capability, the person gets a settings link prefilled with exactly
 * that change, approves it in the page, and the same turn continues with the
 * capability in place (no restart).
 */

const KEY = "sk-ant-capabilities-0123456789abcdef";
const SKILL_TEXT = "WEATHER-SKILL-INSTRUCTIONS: ask api.weather.example for forecasts.";
let llm: MockLlm;
let gw: GatewayProcess;

function send(user: string, text: string) {
  return gw.api("/api/v1/agents/default/messages", {
    method: "POST",
    headers: { accept: "text/event-stream" },
    body: JSON.stringify({ user, channel: "dev", text }),
  });
}

function toolResultFor(text: string) {
  return llm.requests.filter((r) => r.lastUserText === text).at(-1)?.toolResults[0];
}

/** The agent asks for a capability, then reports what the tool told it. */
function scriptRequest(text: string, kind: string, value: string) {
  llm.when(
    (r) => r.lastUserText === text,
    {
      toolCalls: [
        { name: "request_capability", input: { kind, value, reason: `I need ${value} for this.` } },
      ],
    },
    (r) => ({ text: `Tool said: ${r.toolResults[0]?.content.split("\n")[0]}` }),
  );
}

async function sandboxPid(user: string): Promise<number | undefined> {
  const res = await gw.api("/api/v1/sandboxes");
  const list = ((await res.json()) as { sandboxes: { key: { userId: string }; pid?: number }[] })
    .sandboxes;
  return list.find((s) => s.key.userId === user)?.pid;
}

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: KEY });
  gw = await startGatewayProcess({
    toml: [
      "[sandbox]",
      'idle_timeout = "10m"',
      "",
      "[skills.weather]",
      'description = "Weather forecasts"',
      `instructions = "${SKILL_TEXT}"`,
    ].join("\n"),
    env: { ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: llm.url, OPENAI_API_KEY: undefined },
  });
});

afterAll(async () => {
  await gw?.stop();
  await llm?.close();
});

describe("capability requests", () => {
  it("installs a requested skill from the settings page and resumes the same turn", async () => {
    scriptRequest("what's the weather", "skill", "weather");
    const events = eventReader(await send("alice", "what's the weather"));
    const request = await events.until("capability_request");
    expect(request).toMatchObject({ kind: "skill", value: "weather" });
    const url = request.url as string;
    expect(url).toMatch(new RegExp(`^${gw.url}/settings/claim/`));
    const pidWhileWaiting = await sandboxPid("alice");

    // The link lands on the page opened on exactly this request.
    const me = await openSettings(gw, url);
    expect(me.landing).toBe(`/settings?request=${request.requestId}`);
    const shown = await me.call("GET", `/requests/${request.requestId}`);
    expect(await shown.json()).toMatchObject({
      status: "pending",
      event: {
        type: "capability_request",
        kind: "skill",
        value: "weather",
        reason: "I need weather for this.",
      },
    });

    // Someone else cannot approve it, even with their own valid session.
    const other = await openSettings(gw, await apiSettingsLink(gw, "mallory"));
    expect(
      (await other.call("POST", `/requests/${request.requestId}/answer`, { choice: "granted" }))
        .status,
    ).toBe(403);
    // Nor without the CSRF token.
    expect(
      (
        await me.call(
          "POST",
          `/requests/${request.requestId}/answer`,
          { choice: "granted" },
          { csrf: false },
        )
      ).status,
    ).toBe(403);

    const granted = await me.call("POST", `/requests/${request.requestId}/answer`, {
      choice: "granted",
    });
    expect(granted.status).toBe(200);
    expect(await granted.json()).toMatchObject({
      status: "answered",
      answer: { choice: "granted" },
    });

    const rest = await events.rest();
    expect(rest).toContainEqual(
      expect.objectContaining({
        type: "request_resolved",
        requestId: request.requestId,
        outcome: "granted",
      }),
    );
    expect(rest.at(-1)).toMatchObject({
      type: "done",
      text: "Tool said: granted: skill weather is now available. Continue with the task.",
    });
    const result = toolResultFor("what's the weather")!;
    expect(result.content).toContain(SKILL_TEXT);
    // Same worker: the turn resumed, nothing restarted.
    expect(await sandboxPid("alice")).toBe(pidWhileWaiting);

    // It is installed for alice: in her settings and in the next turn's system prompt.
    const state = (await (await me.call("GET", "/state")).json()) as {
      skills: { installed: string[] };
    };
    expect(state.skills.installed).toEqual(["weather"]);
    const next = eventReader(await send("alice", "and tomorrow?"));
    await next.rest();
    const system = JSON.stringify(
      llm.requests.filter((r) => r.lastUserText === "and tomorrow?").at(-1)?.body.system,
    );
    expect(system).toContain(SKILL_TEXT);
    // The audit log has the decision.
    const audit = (await (
      await gw.api("/api/v1/audit?action=capability_request.answered")
    ).json()) as {
      records: { actor: string; details: { kind: string; value: string; choice: string } }[];
    };
    expect(audit.records).toContainEqual(
      expect.objectContaining({
        actor: "api::alice",
        details: expect.objectContaining({ kind: "skill", value: "weather", choice: "granted" }),
      }),
    );
  });

  it("tells the agent when the person declines", async () => {
    scriptRequest("fetch from github", "domain", "api.github.com");
    const events = eventReader(await send("bob", "fetch from github"));
    const request = await events.until("capability_request");
    const me = await openSettings(gw, request.url as string);
    expect(
      (await me.call("POST", `/requests/${request.requestId}/answer`, { choice: "denied" })).status,
    ).toBe(200);
    await events.rest();
    expect(toolResultFor("fetch from github")?.content).toMatch(
      /^denied: the user declined domain api.github.com/,
    );
    const state = (await (await me.call("GET", "/state")).json()) as {
      domains: { user: string[] };
    };
    expect(state.domains.user).toEqual([]);
    // Answered once.
    expect(
      (await me.call("POST", `/requests/${request.requestId}/answer`, { choice: "granted" }))
        .status,
    ).toBe(409);
  });

  it("lobu chat: a typed reason refuses the request with that reason", async () => {
    scriptRequest("cli wants the weather", "skill", "weather");
    const child = spawn(
      process.execPath,
      [LOBU_BIN, "chat", "--gateway", gw.url, "--token", gw.token, "--user", "cid"],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on("exit", r));
    // Typed ahead: the CLI keeps the second line for the question it asks.
    child.stdin.end("cli wants the weather\nnot today\n");
    expect(await exited).toBe(0);
    expect(stderr).toContain('The agent asks for skill "weather"');
    expect(stderr).not.toContain("error:");
    expect(stdout).toContain("Tool said: denied: the user declined skill weather (not today).");
  });

  it("grants a domain into the person's network permissions", async () => {
    scriptRequest("use the api", "domain", "api.example.org");
    const events = eventReader(await send("carol", "use the api"));
    const request = await events.until("capability_request");
    const me = await openSettings(gw, request.url as string);
    expect(
      (await me.call("POST", `/requests/${request.requestId}/answer`, { choice: "granted" }))
        .status,
    ).toBe(200);
    await events.rest();
    expect(toolResultFor("use the api")?.content).toMatch(/^granted: domain api.example.org/);
    const state = (await (await me.call("GET", "/state")).json()) as {
      domains: { user: string[] };
    };
    expect(state.domains.user).toEqual(["api.example.org"]);
  });

  it("asks for a secret's value and stores it as the person's secret before granting", async () => {
    const VALUE = "wt_live_secret_value_0123456789";
    scriptRequest("connect the weather api", "secret", "weather-token");
    const events = eventReader(await send("dana", "connect the weather api"));
    const request = await events.until("capability_request");
    const me = await openSettings(gw, request.url as string);
    // A chat button cannot grant a secret nobody stored: refused, and the request stays open.
    const viaChat = await gw.api(`/api/v1/requests/${request.requestId}/answer`, {
      method: "POST",
      body: JSON.stringify({ choice: "granted" }),
    });
    expect(viaChat.status).toBe(400);
    expect(JSON.stringify(await viaChat.json())).toContain("enter it on the settings page");
    expect(await (await me.call("GET", `/requests/${request.requestId}`)).json()).toMatchObject({
      status: "pending",
    });
    // No value, no grant.
    expect(
      (await me.call("POST", `/requests/${request.requestId}/answer`, { choice: "granted" }))
        .status,
    ).toBe(400);
    const ok = await me.call("POST", `/requests/${request.requestId}/answer`, {
      choice: "granted",
      value: VALUE,
    });
    expect(ok.status).toBe(200);
    const rest = await events.rest();
    expect(toolResultFor("connect the weather api")?.content).toMatch(
      /^granted: secret weather-token/,
    );
    const state = (await (await me.call("GET", "/state")).json()) as {
      secrets: { name: string; hint: string }[];
    };
    expect(state.secrets).toEqual([
      expect.objectContaining({ name: "weather-token", hint: "wt_…6789" }),
    ]);
    // The value went nowhere else: not to the events, the model, or the audit log.
    expect(JSON.stringify(rest)).not.toContain(VALUE);
    expect(JSON.stringify(llm.requests.map((r) => r.body))).not.toContain(VALUE);
    expect(await (await gw.api("/api/v1/audit?limit=500")).text()).not.toContain(VALUE);
  });

  it("tells the person and the agent that packages are not enabled on this gateway", async () => {
    scriptRequest("install ripgrep", "package", "ripgrep");
    const events = eventReader(await send("erin", "install ripgrep"));
    const request = await events.until("capability_request");
    // An answer that does not fit a capability request is refused, and changes nothing.
    const wrong = await gw.api(`/api/v1/requests/${request.requestId}/answer`, {
      method: "POST",
      body: JSON.stringify({ choice: "approve" }),
    });
    expect(wrong.status).toBe(400);
    expect(JSON.stringify(await wrong.json())).toContain("granted, denied");

    const me = await openSettings(gw, request.url as string);
    const granted = await me.call("POST", `/requests/${request.requestId}/answer`, {
      choice: "granted",
    });
    expect(granted.status).toBe(501);
    expect(((await granted.json()) as { error: { message: string } }).error.message).toMatch(
      /^Nix packages are not enabled on this gateway\. Your agent was told to continue without ripgrep\.$/,
    );
    await events.rest();
    // The agent is not told it has the package: the request is settled as denied, with the reason.
    expect(toolResultFor("install ripgrep")?.content).toMatch(
      /^denied: the user declined package ripgrep \(The grant was refused: Nix packages are not enabled on this gateway\)/,
    );
    expect(await (await me.call("GET", `/requests/${request.requestId}`)).json()).toMatchObject({
      status: "answered",
      answer: { choice: "denied" },
    });
    const state = (await (await me.call("GET", "/state")).json()) as {
      packages: { installed: string[] };
    };
    expect(state.packages.installed).toEqual([]);
  });
});
