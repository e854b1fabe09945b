import { userInfo } from "node:os";
import { createInterface, type Interface } from "node:readline/promises";
import type { AgentEvent } from "@lobu/core";
import { GatewayClient, resolveClient } from "../client.ts";

export interface ChatOptions {
  gateway?: string;
  token?: string;
  dataDir?: string;
  agent: string;
  user?: string;
  channel: string;
  message?: string;
  verbose?: boolean;
}

const dim = (s: string) => (process.stderr.isTTY ? `\x1b[2m${s}\x1b[0m` : s);

function brief(input: unknown): string {
  if (input && typeof input === "object" && "command" in input)
    return String((input as { command: unknown }).command);
  const text = JSON.stringify(input);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/**
 * Print one reply as it streams. Returns the exit status: 0 done, 1 error.
 * Questions and approvals are asked on the terminal when one is attached.
 */
async function runTurn(
  client: GatewayClient,
  opts: ChatOptions & { user: string },
  text: string,
  rl: Interface | undefined,
  showTools: boolean,
): Promise<number> {
  let printed = false;
  for await (const event of client.send(opts.agent, {
    user: opts.user,
    channel: opts.channel,
    text,
  })) {
    const e: AgentEvent = event;
    switch (e.type) {
      case "turn_started":
        if (printed) process.stdout.write("\n");
        printed = false;
        break;
      case "text_delta":
        process.stdout.write(e.text);
        printed = true;
        break;
      case "tool_call":
        if (showTools) process.stderr.write(dim(`\n⚙ ${e.name}: ${brief(e.input)}\n`));
        break;
      case "notice":
        process.stderr.write(dim(`\n[${e.level}] ${e.text}\n`));
        break;
      case "question":
      case "approval_request":
      case "capability_request": {
        const options =
          e.type === "question"
            ? e.options
            : e.type === "approval_request"
              ? [
                  { id: "approve", label: "Approve" },
                  { id: "deny", label: "Deny" },
                  { id: "always", label: "Always allow" },
                ]
              : [
                  { id: "granted", label: "Grant" },
                  { id: "denied", label: "Deny" },
                ];
        const title =
          e.type === "question"
            ? e.prompt
            : e.type === "approval_request"
              ? `Approve? ${e.summary}`
              : `The agent asks for ${e.kind} "${e.value}": ${e.reason}${e.url ? `\n  settings: ${e.url}` : ""}`;
        process.stderr.write(`\n? ${title}\n`);
        for (const [i, o] of options.entries()) process.stderr.write(`  ${i + 1}. ${o.label}\n`);
        if (!rl) {
          process.stderr.write(dim(`  (answer with: lobu answer ${e.requestId} <option id>)\n`));
          break;
        }
        const raw = (await rl.question("> ")).trim();
        const pick =
          options[Number(raw) - 1] ??
          options.find((o) => o.id === raw || o.label.toLowerCase() === raw.toLowerCase());
        await client.answer(e.requestId, pick?.id ?? "deny", pick ? undefined : raw);
        break;
      }
      case "done":
        if (!printed && e.text) process.stdout.write(e.text);
        process.stdout.write("\n");
        return 0;
      case "error":
        if (printed) process.stdout.write("\n");
        process.stderr.write(`error: ${e.message} (${e.code})\n`);
        return 1;
    }
  }
  return 1;
}

export async function chatCommand(opts: ChatOptions): Promise<number> {
  const { url, token } = resolveClient(opts);
  const client = new GatewayClient(url, token);
  const user = opts.user ?? process.env.LOBU_USER ?? userInfo().username;
  const withUser = { ...opts, user };
  if (opts.message !== undefined) {
    const rl = process.stdin.isTTY
      ? createInterface({ input: process.stdin, output: process.stderr })
      : undefined;
    try {
      return await runTurn(client, withUser, opts.message, rl, Boolean(opts.verbose));
    } finally {
      rl?.close();
    }
  }
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  // rl.question() never settles once stdin ends; race it against "close".
  const closed = new Promise<null>((resolve) => rl.once("close", () => resolve(null)));
  process.stderr.write(
    dim(
      `Chatting with agent "${opts.agent}" at ${url} as ${user} (channel ${opts.channel}). Ctrl+D to quit.\n`,
    ),
  );
  try {
    for (;;) {
      const line = await Promise.race([rl.question("you › ").catch(() => null), closed]);
      if (line === null) break;
      if (!line.trim()) continue;
      process.stdout.write("agent › ");
      await runTurn(client, withUser, line, rl, true).catch((err: Error) => {
        process.stderr.write(`\nerror: ${err.message}\n`);
      });
    }
  } finally {
    rl.close();
  }
  return 0;
}
