import {
  createLocalPackageSet,
  type GatewayProcess,
  type LocalPackageSet,
  type MockLlm,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  apiSettingsLink,
  eventReader,
  openSettings,
  type SettingsSession,
} from "../settings/helpers.ts";

/**
 * Nix packages end to end, with real Nix building a local package set (no
 * downloads) and real process sandboxes: a person adds a package on the
 * settings page and their agent runs it; an agent asks for one mid-turn and
 * the same turn goes on with it; errors say what happened.
 */

const KEY = "sk-ant-packages-0123456789abcdef";
let llm: MockLlm;
let gw: GatewayProcess;
let set: LocalPackageSet;

interface PackagesState {
  packages: {
    installed: string[];
    fromSkills: string[];
    status: Record<string, { state: string; version?: string; reason?: string; log?: string[] }>;
    unavailable?: string;
  };
}

function send(user: string, text: string) {
  return gw.api("/api/v1/agents/default/messages", {
    method: "POST",
    headers: { accept: "text/event-stream" },
    body: JSON.stringify({ user, channel: "dev", text }),
  });
}

function toolResultsFor(text: string) {
  return llm.requests.filter((r) => r.lastUserText === text).flatMap((r) => r.toolResults);
}

/** The agent runs `command` in bash, then reports its output. */
function scriptBash(text: string, command: string) {
  llm.when(
    (r) => r.lastUserText === text,
    { toolCalls: [{ name: "bash", input: { command } }] },
    (r) => ({ text: `Output: ${r.toolResults[0]?.content.trim()}` }),
  );
}

async function packagesOf(me: SettingsSession): Promise<PackagesState["packages"]> {
  return ((await (await me.call("GET", "/state")).json()) as PackagesState).packages;
}

/** Wait until the package has finished installing (ready or failed), as the page does. */
async function settledState(me: SettingsSession, name: string) {
  await expect
    .poll(async () => (await packagesOf(me)).status[name]?.state, {
      timeout: 60_000,
      interval: 200,
    })
    .toMatch(/^(ready|failed)$/);
  return (await packagesOf(me)).status[name]!;
}

async function sandboxPid(user: string): Promise<number | undefined> {
  const res = await gw.api("/api/v1/sandboxes");
  const list = ((await res.json()) as { sandboxes: { key: { userId: string }; pid?: number }[] })
    .sandboxes;
  return list.find((s) => s.key.userId === user)?.pid;
}

beforeAll(async () => {
  set = createLocalPackageSet();
  llm = await startMockLlm({ apiKey: KEY });
  gw = await startGatewayProcess({
    toml: [
      "[sandbox]",
      'driver = "process"',
      'idle_timeout = "10m"',
      "",
      "[skills.greeter]",
      'description = "Greets people"',
      'instructions = "Use greet-lobu."',
      'packages = ["greet-lobu"]',
      "",
      set.toml({ deny: ["slow-*"] }),
    ].join("\n"),
    env: { ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: llm.url, OPENAI_API_KEY: undefined },
  });
});

afterAll(async () => {
  await gw?.stop();
  await llm?.close();
  set?.remove();
});

describe("Nix packages", () => {
  it("a package added on the settings page runs in the agent's sandbox from its next turn", async () => {
    const me = await openSettings(gw, await apiSettingsLink(gw, "alice"));
    const added = await me.call("POST", "/packages", { name: "hello-lobu" });
    expect(added.status).toBe(200);
    const view = ((await added.json()) as PackagesState).packages;
    expect(view.installed).toEqual(["hello-lobu"]);
    expect(view.unavailable).toBeUndefined();
    expect(["queued", "building", "ready"]).toContain(view.status["hello-lobu"]?.state);
    expect(await settledState(me, "hello-lobu")).toEqual({ state: "ready", version: "1.0" });

    scriptBash("run hello", "hello-lobu; command -v hello-lobu");
    await eventReader(await send("alice", "run hello")).rest();
    const [result] = toolResultsFor("run hello");
    expect(result?.content).toContain("Hello from hello-lobu 1.0");
    // The profile's bin comes first on PATH, inside the sandbox.
    expect(result?.content).toContain("/run/lobu/packages/profile/bin/hello-lobu");
    // The agent is told what it has.
    const system = JSON.stringify(
      llm.requests.filter((r) => r.lastUserText === "run hello").at(-1)?.body.system,
    );
    expect(system).toContain("On PATH: hello-lobu (1.0)");
  });

  it("two people with the same package share one store path", async () => {
    const bob = await openSettings(gw, await apiSettingsLink(gw, "bob"));
    expect((await bob.call("POST", "/packages", { name: "hello-lobu" })).status).toBe(200);
    expect((await settledState(bob, "hello-lobu")).state).toBe("ready");
    const where = 'readlink -f "$(command -v hello-lobu)"';
    for (const user of ["alice", "bob"]) {
      scriptBash(`where is hello, ${user}?`, where);
      await eventReader(await send(user, `where is hello, ${user}?`)).rest();
    }
    const [a, b] = ["alice", "bob"].map((user) =>
      toolResultsFor(`where is hello, ${user}?`)[0]?.content.trim(),
    );
    expect(a).toMatch(new RegExp(`^${set.storeDir}/[a-z0-9]{32}-hello-lobu-1\\.0/bin/hello-lobu$`));
    expect(b).toBe(a);
  });

  it("refuses a name that is not in the package set, with the closest one", async () => {
    const me = await openSettings(gw, await apiSettingsLink(gw, "carol"));
    const res = await me.call("POST", "/packages", { name: "hello-lobuu" });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      error: {
        code: "invalid_setting",
        message: "no package named hello-lobuu in the package set; did you mean hello-lobu?",
      },
    });
    const denied = await me.call("POST", "/packages", { name: "slow-lobu" });
    expect(denied.status).toBe(400);
    expect(((await denied.json()) as { error: { message: string } }).error.message).toBe(
      'slow-lobu is not provided on this gateway (packages.deny has "slow-*")',
    );
    expect((await packagesOf(me)).installed).toEqual([]);
  });

  it("shows why a package failed to build", async () => {
    const me = await openSettings(gw, await apiSettingsLink(gw, "dave"));
    expect((await me.call("POST", "/packages", { name: "broken-lobu" })).status).toBe(200);
    const state = await settledState(me, "broken-lobu");
    expect(state.state).toBe("failed");
    expect(state.reason).toMatch(
      /^building broken-lobu failed: error: builder for '.*-broken-lobu-0\.1\.drv' failed with exit code 1/,
    );
    expect(state.log).toContain("main.c:3: error: missing semicolon in main.c");
    // The agent hears it too.
    llm.when((r) => r.lastUserText === "compile it", { text: "ok" });
    await eventReader(await send("dave", "compile it")).rest();
    const system = JSON.stringify(
      llm.requests.filter((r) => r.lastUserText === "compile it").at(-1)?.body.system,
    );
    expect(system).toContain("Could not be installed: broken-lobu (building broken-lobu failed");
  });

  it("a package granted mid-turn is installed before the same turn goes on", async () => {
    llm.when(
      (r) => r.lastUserText === "greet Bob",
      {
        toolCalls: [
          {
            name: "request_capability",
            input: { kind: "package", value: "greet-lobu", reason: "To greet people." },
          },
        ],
      },
      { toolCalls: [{ name: "bash", input: { command: "greet-lobu Bob" } }] },
      (r) => ({ text: `Said: ${r.toolResults[0]?.content.trim()}` }),
    );
    const events = eventReader(await send("erin", "greet Bob"));
    const request = await events.until("capability_request");
    expect(request).toMatchObject({ kind: "package", value: "greet-lobu" });
    const pidWhileWaiting = await sandboxPid("erin");
    const me = await openSettings(gw, request.url as string);
    const granted = await me.call("POST", `/requests/${request.requestId}/answer`, {
      choice: "granted",
    });
    expect(granted.status).toBe(200);
    const rest = await events.rest();
    const notices = rest.filter((e) => e.type === "notice").map((e) => e.text);
    expect(notices).toEqual(
      expect.arrayContaining([
        "Installing greet-lobu… the agent continues when it is ready.",
        "greet-lobu 2.1 is installed.",
      ]),
    );
    expect(rest).toContainEqual(
      expect.objectContaining({
        type: "request_resolved",
        requestId: request.requestId,
        outcome: "granted",
      }),
    );
    expect(rest.at(-1)).toMatchObject({ type: "done", text: "Said: Greetings, Bob" });
    const toolTexts = toolResultsFor("greet Bob").map((r) => r.content);
    expect(toolTexts[0]).toContain("granted: package greet-lobu is now available");
    expect(toolTexts[0]).toContain("Nix package greet-lobu 2.1 is installed and on PATH");
    // Same worker: the turn resumed, nothing restarted.
    expect(await sandboxPid("erin")).toBe(pidWhileWaiting);
    expect((await packagesOf(me)).installed).toEqual(["greet-lobu"]);
  });

  it("a grant for a package the set does not have is refused with the closest name", async () => {
    llm.when(
      (r) => r.lastUserText === "greet with a typo",
      {
        toolCalls: [
          {
            name: "request_capability",
            input: { kind: "package", value: "greet-lobo", reason: "To greet." },
          },
        ],
      },
      (r) => ({ text: `Tool said: ${r.toolResults[0]?.content}` }),
    );
    const events = eventReader(await send("frank", "greet with a typo"));
    const request = await events.until("capability_request");
    const me = await openSettings(gw, request.url as string);
    const res = await me.call("POST", `/requests/${request.requestId}/answer`, {
      choice: "granted",
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe(
      "no package named greet-lobo in the package set; did you mean greet-lobu?",
    );
    const rest = await events.rest();
    expect(rest.at(-1)).toMatchObject({
      type: "done",
      text: expect.stringContaining(
        "denied: the user declined package greet-lobo (The grant was refused: no package named greet-lobo in the package set; did you mean greet-lobu?)",
      ),
    });
  });

  it("packages from the agent's skills are listed with their state", async () => {
    const me = await openSettings(gw, await apiSettingsLink(gw, "gina"));
    expect((await me.call("POST", "/skills", { name: "greeter" })).status).toBe(200);
    const state = await settledState(me, "greet-lobu");
    expect(state).toEqual({ state: "ready", version: "2.1" });
    expect((await packagesOf(me)).fromSkills).toEqual(["greet-lobu"]);
  });
});

describe("Nix packages in the virtual tier", () => {
  let virtual: GatewayProcess;

  beforeAll(async () => {
    virtual = await startGatewayProcess({
      toml: ["[sandbox]", 'driver = "virtual"', "", set.toml()].join("\n"),
      env: { ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: llm.url, OPENAI_API_KEY: undefined },
    });
  });

  afterAll(async () => {
    await virtual?.stop();
  });

  it("says plainly that the virtual tier cannot run programs", async () => {
    const me = await openSettings(virtual, await apiSettingsLink(virtual, "alice"));
    const view = await packagesOf(me);
    expect(view.unavailable).toBe(
      "agents on this gateway run in the virtual tier, a JavaScript shell that cannot run programs, so Nix packages cannot be used there",
    );
    const res = await me.call("POST", "/packages", { name: "hello-lobu" });
    expect(res.status).toBe(501);
    expect(await res.json()).toMatchObject({
      error: {
        code: "not_provisioned",
        message: view.unavailable,
        hint: 'An operator can run agents in process sandboxes (sandbox.driver = "process").',
      },
    });

    llm.when(
      (r) => r.lastUserText === "install hello in virtual",
      {
        toolCalls: [
          {
            name: "request_capability",
            input: { kind: "package", value: "hello-lobu", reason: "To say hello." },
          },
        ],
      },
      (r) => ({ text: `Tool said: ${r.toolResults[0]?.content}` }),
    );
    const events = eventReader(
      await virtual.api("/api/v1/agents/default/messages", {
        method: "POST",
        headers: { accept: "text/event-stream" },
        body: JSON.stringify({ user: "alice", channel: "dev", text: "install hello in virtual" }),
      }),
    );
    const request = await events.until("capability_request");
    const answer = await me.call("POST", `/requests/${request.requestId}/answer`, {
      choice: "granted",
    });
    expect(answer.status).toBe(501);
    const rest = await events.rest();
    expect(rest.at(-1)).toMatchObject({
      type: "done",
      text: expect.stringContaining("a JavaScript shell that cannot run programs"),
    });
  });
});
