import { userInfo } from "node:os";
import { createInterface } from "node:readline";
import { type AgentEvent, DECISIONS, decisionChoices, inputText, visibleText } from "@lobu/core";
import { describeStop, GatewayClient, resolveClient } from "../client.ts";

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
  /** Sees every line first; true takes it (a `/stop` while a reply streams). */
  intercept: ((line: string) => boolean) | undefined;

  constructor(input: NodeJS.ReadableStream, prompts: NodeJS.WritableStream) {
    this.prompts = prompts;
    this.rl = createInterface({ input, terminal: false });
    this.rl.on("line", (line) => {
      if (this.intercept?.(line)) return;
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
  running: RunningTurn,
): Promise<number> {
  let printed = false;
  const accepted = (messageId: string) => {
    running.messageId = messageId;
    running.stopping = false;
  };
  for await (const event of client.send(
    opts.agent,
    { user: opts.user, channel: opts.channel, text },
    accepted,
  )) {
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
        if (e.code === "turn_stopped") {
          process.stderr.write(dim(`⏹ ${e.message}\n`));
          return 1;
        }
        process.stderr.write(`error: ${e.message} (${e.code})\n`);
        return 1;
    }
  }
  return 1;
}

/** The message whose reply is streaming, if one is, and whether a stop was asked. */
interface RunningTurn {
  messageId?: string | undefined;
  stopping: boolean;
}

/** `/stop` or `/stop all` typed while a reply streams. */
const STOP_LINE = /^\/stop( all)?$/i;

/**
 * Stop the streaming reply (Ctrl-C, `/stop`): the turn ends on the gateway
 * and its stream ends with who stopped it. False when nothing streams.
 */
function stopRunning(client: GatewayClient, running: RunningTurn, clearQueue: boolean): boolean {
  const messageId = running.messageId;
  if (!messageId || running.stopping) return Boolean(messageId);
  running.stopping = true;
  process.stderr.write(dim("\n⏹ stopping…\n"));
  client.stop(messageId, clearQueue).then(
    (outcome) => process.stderr.write(dim(`⏹ ${describeStop(outcome)}\n`)),
    (err: Error) => process.stderr.write(`\nerror: could not stop: ${err.message}\n`),
  );
  return true;
}

/**
 * Ctrl-C while a reply streams stops it; when none does (or a second time)
 * it quits. Returns the function that removes the handler.
 */
function stopOnInterrupt(client: GatewayClient, running: RunningTurn): () => void {
  const onInterrupt = () => {
    if (running.stopping || !stopRunning(client, running, false)) process.exit(130);
  };
  process.on("SIGINT", onInterrupt);
  return () => process.off("SIGINT", onInterrupt);
}

export async function chatCommand(opts: ChatOptions): Promise<number> {
  const { url, token } = resolveClient(opts);
  const client = new GatewayClient(url, token);
  const user = opts.user ?? process.env.LOBU_USER ?? userInfo().username;
  const withUser = { ...opts, user };
  const running: RunningTurn = { stopping: false };
  const release = stopOnInterrupt(client, running);
  const turn = async (rl: LineReader | undefined, text: string, showTools: boolean) => {
    try {
      return await runTurn(client, withUser, text, rl, showTools, running);
    } finally {
      running.messageId = undefined;
    }
  };
  if (opts.message !== undefined) {
    const rl = process.stdin.isTTY ? new LineReader(process.stdin, process.stderr) : undefined;
    try {
      return await turn(rl, opts.message, Boolean(opts.verbose));
    } finally {
      rl?.close();
      release();
    }
  }
  const rl = new LineReader(process.stdin, process.stdout);
  // `/stop` (`/stop all`: and what is queued) stops the reply streaming now.
  rl.intercept = (line) => {
    const stop = STOP_LINE.exec(line.trim());
    return stop !== null && stopRunning(client, running, stop[1] !== undefined);
  };
  process.stderr.write(
    dim(
      `Chatting with agent "${opts.agent}" at ${url} as ${user} (channel ${opts.channel}). Ctrl+C or /stop stops a reply; Ctrl+D quits.\n`,
    ),
  );
  try {
    for (;;) {
      const line = await rl.next("you › ");
      if (line === null) break;
      if (!line.trim()) continue;
      if (STOP_LINE.test(line.trim())) {
        process.stderr.write(dim("nothing is running\n"));
        continue;
      }
      process.stdout.write("agent › ");
      await turn(rl, line, true).catch((err: Error) => {
        process.stderr.write(`\nerror: ${err.message}\n`);
      });
    }
  } finally {
    rl.close();
    release();
  }
  return 0;
}
