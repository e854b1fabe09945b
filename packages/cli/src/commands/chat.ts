import { userInfo } from "node:os";
import { createInterface } from "node:readline";
import { type AgentEvent, DECISIONS, decisionChoices, inputText, visibleText } from "@lobu/core";
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

/**
 * Lines from the terminal, buffered: input typed (or piped) while a reply is
 * still streaming waits its turn instead of being lost, and end of input
 * answers null.
 */
class LineReader {
  private readonly queue: string[] = [];
  private waiter: ((line: string | null) => void) | undefined;
  private closed = false;
  private readonly rl: ReturnType<typeof createInterface>;
  private readonly prompts: NodeJS.WritableStream;

  constructor(input: NodeJS.ReadableStream, prompts: NodeJS.WritableStream) {
    this.prompts = prompts;
    this.rl = createInterface({ input, terminal: false });
    this.rl.on("line", (line) => {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w(line);
      } else this.queue.push(line);
    });
    this.rl.on("close", () => {
      this.closed = true;
      this.waiter?.(null);
      this.waiter = undefined;
    });
  }

  next(prompt: string): Promise<string | null> {
    this.prompts.write(prompt);
    const line = this.queue.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  close(): void {
    this.rl.close();
  }
}

const dim = (s: string) => (process.stderr.isTTY ? `\x1b[2m${s}\x1b[0m` : s);

/** A tool call on one line, hidden characters (escape sequences included) made visible. */
function brief(input: unknown): string {
  const text =
    input && typeof input === "object" && "command" in input
      ? visibleText(String((input as { command: unknown }).command))
      : visibleText(JSON.stringify(input) ?? "");
  const line = text.replace(/\n/g, " ↵ ");
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}

/** An approval: the whole input as the gateway shows it, indented under the question. */
function approvalText(e: Extract<AgentEvent, { type: "approval_request" }>): string {
  const display = e.display ?? inputText(e.input);
  const body = display
    .split("\n")
    .map((line) => `    ${line}`)
    .join("\n");
  const notes = [
    ...(display.includes("⟦")
      ? ["  (⟦…⟧ marks characters that would otherwise be invisible or misleading)"]
      : []),
    ...(e.displayComplete === false ? ["  (too long to show in full: it can only be denied)"] : []),
  ];
  return [`Approve ${e.tool} with exactly this input?`, body, ...notes].join("\n");
}

/**
 * Print one reply as it streams. Returns the exit status: 0 done, 1 error.
 * Questions and approvals are asked on the terminal when one is attached.
 */
async function runTurn(
  client: GatewayClient,
  opts: ChatOptions & { user: string },
  text: string,
  rl: LineReader | undefined,
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
        // An approval whose input is too long to show in full can only be denied.
        const decisions =
          e.type === "question"
            ? []
            : decisionChoices(e.type, e.type !== "approval_request" || e.displayComplete !== false);
        const options =
          e.type === "question"
            ? e.options
            : decisions.map((c) => ({ id: c, label: DECISIONS[c].label }));
        const title =
          e.type === "question"
            ? visibleText(e.prompt)
            : e.type === "approval_request"
              ? approvalText(e)
              : `The agent asks for ${e.kind} "${visibleText(e.value)}": ${visibleText(e.reason)}${e.url ? `\n  ${e.kind === "mcp" ? "connect (open in your browser)" : "settings"}: ${e.url}` : ""}`;
        process.stderr.write(`\n? ${title}\n`);
        for (const [i, o] of options.entries()) process.stderr.write(`  ${i + 1}. ${o.label}\n`);
        if (!rl) {
          process.stderr.write(dim(`  (answer with: lobu answer ${e.requestId} <option id>)\n`));
          break;
        }
        const raw = ((await rl.next("> ")) ?? "").trim();
        const pick =
          options[Number(raw) - 1] ??
          options.find((o) => o.id === raw || o.label.toLowerCase() === raw.toLowerCase());
        // Anything else typed is the answer's text: a question's own answer, or the reason
        // for refusing an approval or a capability.
        const refusal = decisions.find((c) => !DECISIONS[c].grants);
        await client.answer(e.requestId, pick?.id ?? refusal, pick ? undefined : raw);
        break;
      }
      case "file":
        // A file the agent sent: downloadable with this token (docs/files.md).
        if (e.url)
          process.stderr.write(
            `\n📎 ${e.name} (${e.size} bytes): ${new URL(e.url, client.url).href}\n`,
          );
        break;
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
    const rl = process.stdin.isTTY ? new LineReader(process.stdin, process.stderr) : undefined;
    try {
      return await runTurn(client, withUser, opts.message, rl, Boolean(opts.verbose));
    } finally {
      rl?.close();
    }
  }
  const rl = new LineReader(process.stdin, process.stdout);
  process.stderr.write(
    dim(
      `Chatting with agent "${opts.agent}" at ${url} as ${user} (channel ${opts.channel}). Ctrl+D to quit.\n`,
    ),
  );
  try {
    for (;;) {
      const line = await rl.next("you › ");
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
