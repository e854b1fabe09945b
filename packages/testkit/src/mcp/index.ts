export * from "./auth-server.ts";
export * from "./browser.ts";
export * from "./mcp-server.ts";
