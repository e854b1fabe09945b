import { spawn } from "node:child_process";
import {
  createLocalPackageSet,
  type GatewayProcess,
  LOBU_BIN,
  type LocalPackageSet,
  type MockLlm,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import {
  type AuthServer,
  Browser,
  type McpServerEmulator,
  startAuthServer,
  startMcpServer,
} from "@lobu/testkit/mcp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiSettingsLink, eventReader, openSettings } from "../settings/helpers.ts";

/**
 * The "done when", in one story on a gateway process with real
 * process sandboxes, real Nix (a local package set, no downloads), a real
 * OAuth authorization server (oidc-provider) and an MCP server of the
 * official SDK, and `lobu chat` as the person's client: a person installs a skill from their settings page that
 * brings an MCP server and a package; from the conversation they connect
 * their own account; the agent then uses the server's tool (with that
 * person's account) and runs the package in the same turn.
 */

const KEY = "sk-ant-equip-0123456789abcdef";
let llm: MockLlm;
let gw: GatewayProcess;
let set: LocalPackageSet;
let auth: AuthServer;
let notes: McpServerEmulator;

function send(user: string, text: string) {
  return gw.api("/api/v1/agents/default/messages", {
    method: "POST",
    headers: { accept: "text/event-stream" },
    body: JSON.stringify({ user, channel: "dev", text }),
  });
}

function offered(text: string): string[] {
  const round = llm.requests.filter((r) => r.lastUserText === text).at(0);
  return ((round?.body.tools ?? []) as { name: string }[]).map((t) => t.name);
}

beforeAll(async () => {
  set = createLocalPackageSet();
  llm = await startMockLlm({ apiKey: KEY });
  let url = "";
  auth = await startAuthServer({ resource: () => url });
  notes = await startMcpServer({ auth });
  url = notes.url;
  gw = await startGatewayProcess({
    toml: [
      "[sandbox]",
      'driver = "process"',
      'idle_timeout = "10m"',
      "",
      "[agents.default.policy]",
      'request_timeout = "2m"',
      "",
      "[mcp.notes]",
      `url = "${notes.url}"`,
      'description = "Team notes"',
      'policy = "allow"',
      "",
      "[skills.notetaker]",
      'description = "Takes notes and greets"',
      'instructions = "Use the notes tools and greet-lobu."',
      'mcp = ["notes"]',
      'packages = ["greet-lobu"]',
      "",
      set.toml(),
    ].join("\n"),
    env: { ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: llm.url, OPENAI_API_KEY: undefined },
  });
});

afterAll(async () => {
  await gw?.stop();
  await notes?.close();
  await auth?.close();
  await llm?.close();
  set?.remove();
});

describe("equipping an agent from the settings page and the thread", () => {
  it("a skill brings an MCP server and a package; the person connects their own account from the conversation", async () => {
    // Before: the agent has neither.
    llm.when((r) => r.lastUserText === "before", { text: "nothing yet" });
    await eventReader(await send("nora", "before")).rest();
    expect(offered("before").filter((n) => n.startsWith("mcp__"))).toEqual([]);

    // The person installs the skill on their settings page; its package gets built.
    const me = await openSettings(gw, await apiSettingsLink(gw, "nora"));
    expect((await me.call("POST", "/skills", { name: "notetaker" })).status).toBe(200);
    await expect
      .poll(
        async () => {
          const state = (await (await me.call("GET", "/state")).json()) as {
            packages: { status: Record<string, { state: string }> };
          };
          return state.packages.status["greet-lobu"]?.state;
        },
        { timeout: 120_000, interval: 200 },
      )
      .toBe("ready");

    // The agent asks to connect; `lobu chat` prints the link (the REST stream's event); the browser signs in.
    llm.when(
      (r) => r.lastUserText === "connect my notes",
      { toolCalls: [{ name: "mcp__notes__connect", input: {} }] },
      (r) => ({ text: `RESULT: ${r.toolResults[0]?.content.slice(0, 200)}` }),
    );
    const child = spawn(
      process.execPath,
      [
        LOBU_BIN,
        "chat",
        "--gateway",
        gw.url,
        "--token",
        gw.token,
        "--user",
        "nora",
        "--message",
        "connect my notes",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    const exited = new Promise<number | null>((r) => child.on("exit", r));
    const link = await new Promise<string>((resolve) => {
      child.stderr.on("data", (d) => {
        stderr += d;
        const found = /connect \(open in your browser\): (\S+\/mcp\/connect\/\S+)/.exec(stderr);
        if (found) resolve(found[1]!);
      });
    });
    expect(stderr).toContain('The agent asks for mcp "notes"');
    const page = await new Browser().open(link, { account: "nora-acct" });
    expect(page.status).toBe(200);
    expect(await exited).toBe(0);
    expect(stdout).toContain("RESULT: Connected to notes");

    // The next message: the server's tool as the person's own account, and the package, in one turn.
    llm.when(
      (r) => r.lastUserText === "note and greet",
      { toolCalls: [{ name: "mcp__notes__add_note", input: { text: "from nora" } }] },
      { toolCalls: [{ name: "bash", input: { command: "greet-lobu nora" } }] },
      { text: "done" },
    );
    const done = (await eventReader(await send("nora", "note and greet")).rest()).at(-1);
    expect(offered("note and greet")).toContain("mcp__notes__add_note");
    expect(done).toMatchObject({ type: "done", text: "done" });
    const results = llm.requests
      .filter((r) => r.lastUserText === "note and greet")
      .flatMap((r) => r.toolResults.map((t) => t.content.trim()));
    expect(results).toEqual(
      expect.arrayContaining(["saved note 1 for nora-acct", "Greetings, nora"]),
    );
    expect(notes.notes("nora-acct")).toEqual(["from nora"]);
  });
});
