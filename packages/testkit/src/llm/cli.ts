#!/usr/bin/env node
/** Run the mock LLM as a standalone provider: `lobu-mock-llm --port 9999 [--api-key k]`. */
import { parseArgs } from "node:util";
import { MOCK_CLI_MODELS, startMockLlm } from "./server.ts";

const USAGE = `Usage: lobu-mock-llm [--port 9999] [--host 127.0.0.1] [--api-key KEY]

A fake Anthropic + OpenAI provider. Replies "echo: <your last message>".
Without --api-key any key is accepted.`;

let args: { port?: string; host?: string; "api-key"?: string; help?: boolean };
try {
  args = parseArgs({
    options: {
      port: { type: "string", short: "p" },
      host: { type: "string" },
      "api-key": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  }).values;
} catch (error) {
  console.error(`${(error as Error).message}\n\n${USAGE}`);
  process.exit(2);
}
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}

const port = args.port === undefined ? 9999 : Number(args.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`--port must be a number between 0 and 65535, got "${args.port}".`);
  process.exit(2);
}

const host = args.host ?? "127.0.0.1";
let llm: Awaited<ReturnType<typeof startMockLlm>>;
try {
  llm = await startMockLlm({
    port,
    host,
    apiKey: args["api-key"],
    models: MOCK_CLI_MODELS,
    onRequest: (req) => {
      const said = req.lastUserText ? ` "${req.lastUserText.slice(0, 60)}"` : "";
      console.log(
        `${req.api} ${req.method} ${req.path}${req.model ? ` model=${req.model}` : ""}${said}`,
      );
    },
  });
} catch (error) {
  // A sentence that says what to do, not a stack trace.
  const code = (error as NodeJS.ErrnoException).code;
  console.error(
    code === "EADDRINUSE"
      ? `lobu-mock-llm: port ${port} on ${host} is already in use; choose another with --port (e.g. --port ${port === 65535 ? port - 1 : port + 1}), or --port 0 for any free one.`
      : code === "EACCES"
        ? `lobu-mock-llm: not allowed to listen on port ${port} (ports below 1024 need root); choose another with --port.`
        : `lobu-mock-llm: cannot listen on ${host}:${port}: ${(error as Error).message}`,
  );
  process.exit(1);
}

console.log(`Mock LLM listening on ${llm.url}
  Anthropic base URL: ${llm.url}   (POST /v1/messages)
  OpenAI base URL:    ${llm.openaiUrl}   (POST /v1/chat/completions)
  Models:             GET ${llm.openaiUrl}/models
  API key:            ${args["api-key"] ? "required (--api-key)" : "any"}`);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    llm.close().then(() => process.exit(0));
  });
}
