import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { AgentEvent } from "@lobu/core";
import { createParser } from "eventsource-parser";

export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

export interface ClientOptions {
  gateway?: string;
  token?: string;
  dataDir?: string;
}

/** Gateway URL and token from flags, environment, or the local data dir's bootstrap token. */
export function resolveClient(opts: ClientOptions): { url: string; token: string } {
  const url = (opts.gateway ?? process.env.LOBU_GATEWAY_URL ?? "http://127.0.0.1:8080").replace(
    /\/+$/,
    "",
  );
  let token = opts.token ?? process.env.LOBU_TOKEN;
  if (!token) {
    const file = join(resolve(opts.dataDir ?? process.env.LOBU_DATA_DIR ?? ".lobu"), "admin-token");
    if (existsSync(file)) token = readFileSync(file, "utf8").trim();
  }
  if (!token) {
    throw new CliError(
      "no API token: pass --token, set LOBU_TOKEN, or run from the directory where `lobu run` keeps its data (.lobu/admin-token)",
      2,
    );
  }
  return { url, token };
}

interface ErrorBody {
  error?: { code?: string; message?: string; hint?: string };
}

async function describeFailure(res: Response): Promise<string> {
  const text = await res.text();
  try {
    const body = JSON.parse(text) as ErrorBody;
    if (body.error?.message) {
      return `${body.error.message}${body.error.hint ? `\n  hint: ${body.error.hint}` : ""} (HTTP ${res.status})`;
    }
  } catch {
    // Not our JSON error body (a proxy's page, say): its raw text is shown below.
  }
  return `HTTP ${res.status}: ${text.slice(0, 300)}`;
}

/** What `POST …/stop` answers (docs/api.md). */
export interface StopOutcome {
  conversationId: string;
  stopped: string | null;
  dropped: string[];
  kept: number;
}

/** One line saying what a stop did. */
export function describeStop(outcome: StopOutcome): string {
  const parts = [outcome.stopped ? `stopped ${outcome.stopped}` : "nothing was running"];
  if (outcome.dropped.length) parts.push(`dropped ${outcome.dropped.length} queued`);
  if (outcome.kept) parts.push(`${outcome.kept} queued still to run`);
  return parts.join("; ");
}

export class GatewayClient {
  readonly url: string;
  private readonly token: string;

  constructor(url: string, token: string) {
    this.url = url;
    this.token = token;
  }

  private async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    try {
      return await fetch(`${this.url}${path}`, {
        ...init,
        headers: {
          authorization: `Bearer ${this.token}`,
          "content-type": "application/json",
          ...(init.headers ?? {}),
        },
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      throw new CliError(
        `cannot reach the gateway at ${this.url}${cause ? ` (${cause})` : ""}. Is \`lobu run\` running? Use --gateway to point elsewhere.`,
      );
    }
  }

  async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const res = await this.fetch(path, init);
    if (!res.ok) throw new CliError(await describeFailure(res));
    return (res.status === 204 ? undefined : await res.json()) as T;
  }

  /**
   * Send a message and yield its events until the reply is complete.
   * `onAccepted` gets the message's id once the gateway took it (to stop it).
   */
  async *send(
    agent: string,
    body: { user: string; channel: string; text: string },
    onAccepted?: (messageId: string) => void,
  ): AsyncGenerator<AgentEvent> {
    const res = await this.fetch(`/api/v1/agents/${encodeURIComponent(agent)}/messages`, {
      method: "POST",
      headers: { accept: "text/event-stream" },
      body: JSON.stringify(body),
    });
    if (!res.ok || !res.body) throw new CliError(await describeFailure(res));
    const messageId = res.headers.get("x-lobu-message-id");
    if (messageId) onAccepted?.(messageId);
    const queue: AgentEvent[] = [];
    const parser = createParser({
      onEvent: (e) => {
        try {
          queue.push(JSON.parse(e.data) as AgentEvent);
        } catch {
          // Not an event this client can read (a newer gateway?): say so, go on.
          process.stderr.write(`lobu: skipped an unreadable event: ${e.data.slice(0, 200)}\n`);
        }
      },
    });
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      parser.feed(decoder.decode(chunk, { stream: true }));
      while (queue.length) {
        const event = queue.shift()!;
        yield event;
        if (event.type === "done" || event.type === "error") return;
      }
    }
    throw new CliError(
      "the gateway closed the stream before the reply was complete; see `lobu chat` history or retry",
    );
  }

  /**
   * Stop the turn of a message (`msg_…`), or whatever runs in a conversation;
   * `clearQueue` also drops the messages waiting behind it.
   */
  stop(target: string, clearQueue = false): Promise<StopOutcome> {
    const kind = target.startsWith("msg_") ? "messages" : "conversations";
    const query = clearQueue ? "?queue=clear" : "";
    return this.json(`/api/v1/${kind}/${encodeURIComponent(target)}/stop${query}`, {
      method: "POST",
    });
  }

  /** Answer with `choice` (an option id or a decision), `text`, or both. */
  answer(requestId: string, choice: string | undefined, text?: string): Promise<unknown> {
    return this.json(`/api/v1/requests/${encodeURIComponent(requestId)}/answer`, {
      method: "POST",
      body: JSON.stringify({ choice, ...(text ? { text } : {}) }),
    });
  }
}
