import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { StdioServers } from "../src/mcp-stdio.ts";

/**
 * The worker's stdio MCP servers (real child processes on the official SDK):
 * started lazily with only the environment it is given, started again after a
 * crash a bounded number of times, restarted when the operator changes the
 * command, and stopped with the sandbox.
 */

const req = createRequire(import.meta.url);
const esm = (id: string) => pathToFileURL(req.resolve(id).replace("/dist/cjs/", "/dist/esm/")).href;
const SERVER = `
import { McpServer } from "${esm("@modelcontextprotocol/sdk/server/mcp.js")}";
import { StdioServerTransport } from "${esm("@modelcontextprotocol/sdk/server/stdio.js")}";
const server = new McpServer({ name: "t", version: "1" });
server.registerTool("env", { description: "its environment" }, async () => ({
  content: [{ type: "text", text: JSON.stringify({ pid: process.pid, secret: process.env.LOBU_TEST_SECRET ?? null, given: process.env.GIVEN ?? null }) }],
}));
server.registerTool("crash", {}, async () => process.exit(2));
await server.connect(new StdioServerTransport());
`;

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function setup() {
  const dir = mkdtempSync(join(tmpdir(), "lobu-stdio-"));
  dirs.push(dir);
  const script = join(dir, "server.mjs");
  writeFileSync(script, SERVER);
  const spec = { id: "t", command: process.execPath, args: [script] };
  const servers = new StdioServers({ cwd: dir, env: { GIVEN: "yes" } });
  return { spec, servers };
}

const textOf = (r: { result?: { content: unknown[] } }) =>
  JSON.parse((r.result?.content[0] as { text?: string } | undefined)?.text ?? "null") as Record<
    string,
    unknown
  >;

describe("stdio MCP servers in the worker", () => {
  it("lists and calls; the server gets only the environment it is given", async () => {
    process.env.LOBU_TEST_SECRET = "must-not-pass";
    const { spec, servers } = setup();
    try {
      const [listed] = await servers.list([spec]);
      expect(((listed?.tools ?? []) as { name: string }[]).map((t) => t.name)).toEqual([
        "env",
        "crash",
      ]);
      const seen = textOf(await servers.call("c1", spec, "env", {}, 10_000));
      expect(seen).toMatchObject({ secret: null, given: "yes" });
      // The same process serves the next call.
      expect(textOf(await servers.call("c2", spec, "env", {}, 10_000)).pid).toBe(seen.pid);
    } finally {
      delete process.env.LOBU_TEST_SECRET;
      await servers.close();
    }
  });

  it("starts a crashed server again, a bounded number of times", async () => {
    const { spec, servers } = setup();
    try {
      for (let i = 0; i < 3; i++) {
        expect((await servers.call(`c${i}`, spec, "crash", {}, 10_000)).error).toBeDefined();
      }
      const [after] = await servers.list([spec]);
      expect(after?.error).toMatch(/stopped 3 times.*until the sandbox restarts/);
    } finally {
      await servers.close();
    }
  });

  it("a server whose program does not exist says so", async () => {
    const { servers } = setup();
    const [listed] = await servers.list([{ id: "gone", command: "/nonexistent/npx", args: [] }]);
    expect(listed?.error).toMatch(/gone server did not start/);
    await servers.close();
  });
});
