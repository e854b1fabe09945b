import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const req = createRequire(import.meta.url);
/** The SDK and zod of this checkout, which the sandbox shows read-only at the same paths. */
const esm = (id: string) => pathToFileURL(req.resolve(id).replace("/dist/cjs/", "/dist/esm/")).href;

/** A stdio MCP server (official SDK) whose tools show where it runs and keep state in memory. */
export const PROBE_SERVER = `
import { hostname } from "node:os";
import { McpServer } from "${esm("@modelcontextprotocol/sdk/server/mcp.js")}";
import { StdioServerTransport } from "${esm("@modelcontextprotocol/sdk/server/stdio.js")}";
import { z } from "${pathToFileURL(req.resolve("zod")).href}";

const memory = [];
const server = new McpServer({ name: "probe", version: "1.0.0" });
const text = (t) => ({ content: [{ type: "text", text: t }] });
server.registerTool("probe", { description: "Where am I?", inputSchema: { url: z.string() } }, async ({ url }) => {
  let reach;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(20000) });
    reach = "status " + res.status;
  } catch (err) {
    reach = "error " + (err.cause?.code ?? err.message);
  }
  const env = JSON.stringify(process.env);
  return text(JSON.stringify({
    hostname: hostname(),
    uid: process.getuid(),
    cwd: process.cwd(),
    proxy: process.env.HTTPS_PROXY ? "set" : "unset",
    secretInEnv: env.includes("sk-ant"),
    reach,
  }));
});
server.registerTool("remember", { description: "Remember a word", inputSchema: { word: z.string() } }, async ({ word }) => {
  memory.push(word);
  return text("remembered " + word);
});
server.registerTool("recall", { description: "What was remembered" }, async () => text("memory: [" + memory.join(",") + "]"));
server.registerTool("forbidden", { description: "Denied by policy" }, async () => text("MUST NOT RUN"));
server.registerTool("crash", { description: "Exit the server" }, async () => process.exit(3));
await server.connect(new StdioServerTransport());
`;
