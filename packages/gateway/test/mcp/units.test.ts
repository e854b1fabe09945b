import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, GatewayToolSpec, McpSection, registeredSecretCount } from "@lobu/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConnectFlows, flowCookieName } from "../../src/mcp/connect-flows.ts";
import { McpCredentials } from "../../src/mcp/credentials.ts";
import { connectToolName, mcpToolName } from "../../src/mcp/names.ts";
import { guardedFetch } from "../../src/mcp/outbound.ts";
import { serverToolPolicy } from "../../src/mcp/policy.ts";
import { resultText } from "../../src/mcp/results.ts";
import { SecretStore } from "../../src/secrets/store.ts";
import { createStore } from "../../src/store/index.ts";
import type { Store } from "../../src/store/port.ts";

describe("MCP tool names", () => {
  it("carry the server and the tool, in the charset gateway tools allow", () => {
    expect(mcpToolName("notes", "add_note")).toBe("mcp__notes__add_note");
    expect(connectToolName("git-hub")).toMatch(/^mcp__git_hub__connect_[0-9a-f]{8}$/);
    for (const [server, tool] of [
      ["github", "Create-Issue"],
      ["x", "a".repeat(200)],
      ["docs", "search.v2/all"],
      ["docs", "ünïcode"],
    ] as const) {
      const name = mcpToolName(server, tool);
      expect(GatewayToolSpec.shape.name.safeParse(name).success, name).toBe(true);
    }
  });

  it("never give two tools one name, however folding and cutting meet", () => {
    const names = [
      mcpToolName("docs", "search-all"),
      mcpToolName("docs", "search_all"),
      mcpToolName("docs", "Search_all"),
      mcpToolName("docs", `${"a".repeat(70)}1`),
      mcpToolName("docs", `${"a".repeat(70)}2`),
    ];
    expect(new Set(names).size).toBe(names.length);
  });
});

describe("a server's tool policy", () => {
  const server = McpSection.parse({
    url: "https://mcp.example.com/mcp",
    policy: "ask",
    tools: { "get_*": "allow", "get_secret*": "deny", delete_all: "deny", "*_issue": "allow" },
  });

  it("an exact name wins, then the longest pattern, then the server's policy", () => {
    expect(serverToolPolicy(server, "get_issue")).toBe("allow");
    expect(serverToolPolicy(server, "get_secret_key")).toBe("deny");
    expect(serverToolPolicy(server, "delete_all")).toBe("deny");
    expect(serverToolPolicy(server, "create_issue")).toBe("allow");
    expect(serverToolPolicy(server, "rename")).toBe("ask");
  });

  it("a pattern is a glob, not a regular expression", () => {
    const dotted = McpSection.parse({ url: "https://m.example/mcp", tools: { "a.b": "allow" } });
    expect(serverToolPolicy(dotted, "aXb")).toBe("ask");
  });

  it("the config takes either a url or a command", () => {
    expect(McpSection.safeParse({}).success).toBe(false);
    expect(McpSection.safeParse({ url: "https://m.example/mcp", command: "npx" }).success).toBe(
      false,
    );
    expect(McpSection.safeParse({ command: "npx", args: ["-y", "some-server"] }).success).toBe(
      true,
    );
  });
});

describe("the MCP client's outbound guard (SSRF)", () => {
  const seen: string[] = [];
  const fake = async (url: string | URL, init?: RequestInit) => {
    seen.push(`${String(url)} ${init?.redirect ?? "follow"}`);
    return new Response("{}", { status: 200 });
  };
  const guard = (resolve: string[] = ["93.184.216.34"]) =>
    guardedFetch({
      serverUrl: "http://10.1.2.3:8000/mcp",
      allowPrivateRanges: [],
      fetch: fake,
      resolver: async () => resolve.map((address) => ({ address, family: 4 })),
    });

  it("the configured server's own host is the operator's choice, on any port", async () => {
    await guard()("http://10.1.2.3:8000/mcp");
    await guard()("http://10.1.2.3:9000/.well-known/oauth-authorization-server");
    expect(seen.slice(-2)).toEqual([
      "http://10.1.2.3:8000/mcp follow",
      "http://10.1.2.3:9000/.well-known/oauth-authorization-server follow",
    ]);
  });

  it("every other URL must be https to a public address, and redirects are not followed", async () => {
    await expect(guard()("http://auth.example.com/token")).rejects.toThrow(/https/);
    for (const target of [
      "https://169.254.169.254/latest/meta-data",
      "https://127.0.0.1/",
      "https://[::1]/",
      "https://10.0.0.1/",
      "https://localhost/",
      "https://[::ffff:169.254.169.254]/",
    ])
      await expect(guard()(target), target).rejects.toThrow(/refused/);
    await expect(guard(["192.168.1.1"])("https://rebind.example.com/")).rejects.toThrow(
      /192\.168\.1\.1/,
    );
    await guard()("https://auth.example.com/token");
    expect(seen.at(-1)).toBe("https://auth.example.com/token manual");
  });
});

describe("results for the model", () => {
  it("text, structured content, binary content by what it is, bounded", () => {
    expect(
      resultText(
        {
          content: [
            { type: "text", text: "hello" },
            { type: "image", data: "AAAA", mimeType: "image/png" },
            { type: "resource_link", uri: "file:///x", name: "x" },
          ],
        },
        1000,
      ),
    ).toBe("hello\n[image image/png, 3 bytes]\n[link x: file:///x]");
    expect(resultText({ content: [], structuredContent: { a: 1 } }, 1000)).toBe('{"a":1}');
    const long = resultText({ content: [{ type: "text", text: "x".repeat(5000) }] }, 1000);
    expect(long.length).toBeLessThanOrEqual(1000);
    expect(long).toContain("5000 characters");
  });
});

describe("a person's connection is theirs", () => {
  let dir: string;
  let store: Store;
  let secrets: SecretStore;
  let credentials: McpCredentials;
  const tokens = {
    access_token: "AT-alice-0123456789abcdef",
    token_type: "Bearer",
    refresh_token: "RT-alice-0123456789",
  };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "lobu-mcp-units-"));
    store = await createStore({ driver: "sqlite", path: join(dir, "lobu.db") });
    secrets = new SecretStore(store.kv, randomBytes(32));
    credentials = new McpCredentials(secrets);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("tokens are stored encrypted, per person and server", async () => {
    await credentials.saveTokens("slack:T1:UALICE", "notes", tokens);
    expect((await credentials.tokens("slack:T1:UALICE", "notes"))?.tokens).toEqual(tokens);
    expect(await credentials.tokens("slack:T1:UBOB", "notes")).toBeUndefined();
    expect(await credentials.tokens("slack:T1:UALICE", "other")).toBeUndefined();
    for await (const { value } of scan(store)) {
      expect(value).not.toContain("AT-alice");
      expect(value).not.toContain("RT-alice");
    }
  });

  it("refreshing keeps the redaction registry the same size, the current token redacted", async () => {
    const user = "slack:T1:UREFRESH";
    const pair = (i: number) => ({
      access_token: `AT-refresh-${i}-0123456789abcdef`,
      token_type: "Bearer",
      refresh_token: `RT-refresh-${i}-0123456789abcdef`,
    });
    // What the SDK does on a refresh: save the new pair; each use reads it back.
    await credentials.saveTokens(user, "notes", pair(0));
    await credentials.tokens(user, "notes");
    const size = registeredSecretCount();
    for (let i = 1; i <= 50; i++) {
      await credentials.saveTokens(user, "notes", pair(i));
      await credentials.tokens(user, "notes");
    }
    expect(registeredSecretCount()).toBe(size);
    // A log line with the current pair shows neither.
    const lines: string[] = [];
    const log = createLogger("t", { destination: { write: (l: string) => lines.push(l) } });
    log.warn({ detail: `Bearer ${pair(50).access_token} refresh=${pair(50).refresh_token}` }, "x");
    expect(lines.join("")).toContain("Bearer [REDACTED] refresh=[REDACTED]");
    expect(lines.join("")).not.toContain("refresh-50");
    // Disconnecting drops the pair (and the stored record's value) from the registry.
    await credentials.forget(user, "notes", ["tokens"]);
    expect(registeredSecretCount()).toBeLessThan(size);
  });

  it("a ciphertext copied to another person's key does not decrypt for them", async () => {
    await credentials.saveTokens("slack:T1:UALICE", "notes", tokens);
    const aliceKey = "secret:person:slack%3AT1%3AUALICE:mcp.notes.tokens";
    const sealed = await store.kv.get(aliceKey);
    expect(sealed).not.toBeNull();
    await store.kv.set("secret:person:slack%3AT1%3AUBOB:mcp.notes.tokens", sealed!);
    expect(await credentials.tokens("slack:T1:UBOB", "notes")).toBeUndefined();
  });

  it("the person scope is never resolved for an agent's sandbox", async () => {
    await secrets.set(
      { scope: { kind: "person", userKey: "slack:T1:UALICE" }, name: "mcp.notes.tokens" },
      "x",
    );
    expect(
      await secrets.resolve("mcp.notes.tokens", { agentId: "default", userKey: "slack:T1:UALICE" }),
    ).toBeNull();
    expect(
      await secrets.list({ kind: "user", agentId: "default", userKey: "slack:T1:UALICE" }),
    ).toEqual([]);
  });

  it("a connect link works once; a flow only for the browser that started it", async () => {
    const flows = new ConnectFlows(store.kv, secrets, createLogger("t", { level: "silent" }));
    const binding = { userKey: "slack:T1:UALICE", agentId: "default", serverId: "notes" };
    const started = { verifier: "verifier-0123456789abcdef", client: { client_id: "c1" } };
    const code = await flows.link(binding);
    expect(await flows.peekLink(code)).toEqual(binding);
    expect(await flows.takeLink(code)).toEqual(binding);
    expect(await flows.takeLink(code)).toBeUndefined();
    expect(await flows.takeLink("made-up")).toBeUndefined();
    const state = flows.newState();
    await flows.start(state, { ...binding, browser: "cookie-a" }, started);
    expect(await flows.take(state, "cookie-b")).toBe("wrong_browser");
    // A state that leaked is worth one try: the right browser is now refused too.
    expect(await flows.take(state, "cookie-a")).toBeUndefined();
    const next = flows.newState();
    await flows.start(next, { ...binding, browser: "cookie-a" }, started);
    // The verifier is sealed in the record, not stored in the clear.
    for (const { value } of await store.kv.list("mcpflow:", { limit: 10 }))
      expect(value).not.toContain(started.verifier);
    expect(await flows.take(next, "cookie-a")).toMatchObject({ ...binding, secrets: started });
  });

  it("flows started at once each keep their own verifier and cookie", async () => {
    const flows = new ConnectFlows(store.kv, secrets, createLogger("t", { level: "silent" }));
    const binding = { userKey: "slack:T1:UALICE", agentId: "default", serverId: "notes" };
    const [a, b] = [flows.newState(), flows.newState()];
    await flows.start(
      a,
      { ...binding, browser: "cookie-a" },
      {
        verifier: "verifier-a-0123456789",
        client: { client_id: "c1" },
      },
    );
    await flows.start(
      b,
      { ...binding, browser: "cookie-b" },
      {
        verifier: "verifier-b-0123456789",
        client: { client_id: "c1" },
      },
    );
    expect(flowCookieName(a)).not.toBe(flowCookieName(b));
    expect(await flows.take(a, "cookie-a")).toMatchObject({
      secrets: { verifier: "verifier-a-0123456789" },
    });
    expect(await flows.take(b, "cookie-b")).toMatchObject({
      secrets: { verifier: "verifier-b-0123456789" },
    });
  });
});

async function* scan(store: Store): AsyncGenerator<{ key: string; value: string }> {
  yield* await store.kv.list("secret:", { limit: 1000 });
}
