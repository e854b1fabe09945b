import {
  type AuthServer,
  type McpServerEmulator,
  startAuthServer,
  startMcpServer,
} from "@lobu/testkit/mcp";

/** How long to wait for a turn through a real sandbox (a safety net, not an assertion). */
export const WAIT = { timeoutMs: 60_000 };

/** An MCP server of the official SDK behind a real OAuth authorization server (resource = the server). */
export async function startOAuthMcp(): Promise<{
  auth: AuthServer;
  mcp: McpServerEmulator;
  close(): Promise<void>;
}> {
  let url = "";
  const auth = await startAuthServer({ resource: () => url });
  const mcp = await startMcpServer({ auth });
  url = mcp.url;
  return {
    auth,
    mcp,
    async close() {
      await mcp.close();
      await auth.close();
    },
  };
}
