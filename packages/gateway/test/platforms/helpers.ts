import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import {
  type GatewayProcess,
  type MockLlm,
  type RecordedRequest,
  type SlackEmulator,
  type SlackEmulatorOptions,
  startGatewayProcess,
  startSlackEmulator,
  type TelegramEmulator,
} from "@lobu/testkit";
import { expect } from "vitest";

/** A real provider key the gateway holds; workers only ever see a placeholder. */
export const PROVIDER_KEY = "sk-ant-platform-tests-0123456789abcdef";

/** How long to wait for the gateway to react (a safety net, not an assertion). */
export const WAIT = { timeoutMs: 30_000 };

/** Gateway environment that points the default provider at the mock LLM (the gateway holds `key`). */
export function llmEnv(llm: MockLlm, key = PROVIDER_KEY): Record<string, string | undefined> {
  return {
    ANTHROPIC_API_KEY: key,
    ANTHROPIC_BASE_URL: llm.url,
    OPENAI_API_KEY: undefined,
  };
}

/** The Slack app end-to-end tests talk to: the bot "lobu", told of mentions and DMs unless `opts` say otherwise. */
export function startSlackApp(opts: SlackEmulatorOptions): Promise<SlackEmulator> {
  return startSlackEmulator({
    botName: "lobu",
    subscriptions: ["app_mention", "message.im"],
    ...opts,
  });
}

/** Gateway environment of the Slack adapter, pointed at the emulator. */
export function slackEnv(slack: SlackEmulator): Record<string, string> {
  return {
    SLACK_BOT_TOKEN: slack.botToken,
    SLACK_SIGNING_SECRET: slack.signingSecret,
    SLACK_API_URL: slack.apiUrl,
  };
}

/**
 * A `lobu run` gateway on `toml` for the Slack emulator (whose events go to
 * it), the default provider on the mock LLM (the gateway holds `key`).
 */
export async function startSlackGateway(opts: {
  slack: SlackEmulator;
  llm: MockLlm;
  toml: string;
  key?: string;
  env?: Record<string, string | undefined>;
}): Promise<GatewayProcess> {
  const gw = await startGatewayProcess({
    toml: opts.toml,
    env: { ...llmEnv(opts.llm, opts.key), ...slackEnv(opts.slack), ...opts.env },
  });
  opts.slack.eventsUrl = `${gw.url}/slack/events`;
  return gw;
}

/** Gateway environment of the Telegram adapter, pointed at the emulator. */
export function telegramEnv(tg: TelegramEmulator, botToken: string): Record<string, string> {
  return { TELEGRAM_BOT_TOKEN: botToken, TELEGRAM_API_ROOT: tg.url };
}

/** lobu.toml lines the main platform gateways share: warm sandboxes, and bash asks first. */
export const ASK_BASH_TOML = [
  "[sandbox]",
  'idle_timeout = "10m"',
  "",
  "[agents.default.policy]",
  'tools = { bash = "ask" }',
  "",
];

/** lobu.toml lines of gateways that test files: a small limit per file, so refusals are cheap to cause. */
export const FILES_TOML = ["[files]", "max_file_mb = 1", ""];

/** A reply the mock LLM streams in small pieces, slowly enough to be edited several times. */
export function slowText(
  text: string,
  pieces = 10,
  delayMs = 150,
): { text: string; chunks: string[]; delayMs: number } {
  const size = Math.ceil(text.length / pieces);
  const chunks: string[] = [];
  for (let i = 0; i < text.length; i += size) chunks.push(text.slice(i, i + size));
  return { text, chunks, delayMs };
}

export interface ConversationInfo {
  id: string;
  key: { platform: string; userId: string; channelId: string };
}

/** Conversations the gateway recorded for a platform user (one exists once a message was accepted). */
export async function conversationsOf(
  gw: GatewayProcess,
  userId: string,
): Promise<ConversationInfo[]> {
  const res = await gw.api(
    `/api/v1/agents/default/conversations?user=${encodeURIComponent(userId)}`,
  );
  return ((await res.json()) as { conversations: ConversationInfo[] }).conversations;
}

/** A conversation's history (user and assistant entries). */
export async function historyOf(
  gw: GatewayProcess,
  conversationId: string,
): Promise<{ role: string; text: string }[]> {
  const res = await gw.api(`/api/v1/conversations/${conversationId}/messages`);
  return ((await res.json()) as { messages: { role: string; text: string }[] }).messages;
}

/**
 * Wait until earlier tests' messages are all answered, so a "nothing was queued"
 * check compares against a quiet queue rather than one still draining.
 */
export async function drainedQueue(gw: GatewayProcess, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const depth = await queueDepth(gw);
    if (depth === 0 || Date.now() > deadline) return depth;
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function queueDepth(gw: GatewayProcess): Promise<number> {
  return ((await (await fetch(`${gw.url}/readyz`)).json()) as { queueDepth: number }).queueDepth;
}

/** Wait until the assistant's reply to `text` is in the conversation's history. */
export async function waitForHistory(
  gw: GatewayProcess,
  userId: string,
  predicate: (h: { role: string; text: string }[]) => boolean,
): Promise<{ role: string; text: string }[]> {
  for (let i = 0; i < 200; i++) {
    const [conv] = await conversationsOf(gw, userId);
    if (conv) {
      const history = await historyOf(gw, conv.id);
      if (predicate(history)) return history;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`history of ${userId} never matched`);
}

export interface FillerAnswer {
  status: number;
  body: string;
  /** Bytes of the body written before the answer came. */
  sent: number;
}

/**
 * More than the gateway reads and discards after refusing a body (http/linger.ts:
 * 64 MiB): a refused sender of this much is cut off before the end, which a
 * smaller body (all of it discarded on a fast machine) cannot show.
 */
export const BEYOND_DISCARD = 300 * 1024 * 1024;

/**
 * Send `totalBytes` of filler to `url` without holding it in memory: 64 KiB
 * pieces of one buffer, written as the connection drains, with a
 * Content-Length (`sized`) or chunked. Resolves with the first answer; a
 * gateway that closes the connection without one rejects.
 */
export function sendFiller(
  url: string,
  opts: { totalBytes: number; sized: boolean; method?: string; headers?: Record<string, string> },
): Promise<FillerAnswer> {
  const target = new URL(url);
  const piece = Buffer.alloc(64 * 1024, "a");
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = false;
    const req = httpRequest({
      host: target.hostname,
      port: target.port,
      path: `${target.pathname}${target.search}`,
      method: opts.method ?? "POST",
      headers: {
        ...opts.headers,
        ...(opts.sized
          ? { "content-length": String(opts.totalBytes) }
          : { "transfer-encoding": "chunked" }),
      },
    });
    req.on("response", (res) => {
      answered = true;
      const parts: Buffer[] = [];
      res.on("data", (b: Buffer) => parts.push(b));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString(), sent });
        req.destroy();
      });
      res.on("error", () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString(), sent });
      });
    });
    req.on("error", (err) => {
      if (!answered) reject(new Error(`no answer after ${sent} bytes: ${err.message}`));
    });
    const pump = () => {
      while (!answered && sent < opts.totalBytes) {
        const n = Math.min(piece.length, opts.totalBytes - sent);
        sent += n;
        if (!req.write(n === piece.length ? piece : piece.subarray(0, n))) {
          req.once("drain", pump);
          return;
        }
      }
      if (!answered) req.end();
    };
    pump();
  });
}

/**
 * An unsigned body is refused (401) before all of it is read; a signed one
 * over the gateway's limit is refused (413). `signed` gives the headers that
 * pass the platform's check, made just before the signed body is sent.
 */
export async function expectBodiesBounded(
  url: string,
  signed: () => Record<string, string> | Promise<Record<string, string>>,
): Promise<void> {
  const unsigned = await sendFiller(url, {
    totalBytes: BEYOND_DISCARD,
    sized: false,
    headers: { "content-type": "application/json" },
  });
  expect(unsigned.status).toBe(401);
  expect(unsigned.sent).toBeLessThan(BEYOND_DISCARD);
  const big = await sendFiller(url, {
    totalBytes: 8 * 1024 * 1024,
    sized: true,
    headers: { "content-type": "application/json", ...(await signed()) },
  });
  expect(big.status).toBe(413);
}

/**
 * The model's side of a turn that reads an attached text file and sends a
 * result file back: bash `cat` of the inbox path named in the message, write
 * `out/lines.txt`, send_file it with the caption "Counted", then say what came back.
 */
export function scriptCountLines(llm: MockLlm, matches: (r: RecordedRequest) => boolean): void {
  const pathIn = (text: string) => /\/workspace\/inbox\/\S+\.txt/.exec(text)?.[0] ?? "none";
  llm.when(
    matches,
    (r) => ({
      toolCalls: [{ name: "bash", input: { command: `cat ${pathIn(r.lastUserText)}` } }],
    }),
    (r) => ({
      toolCalls: [
        {
          name: "write",
          input: { path: "out/lines.txt", content: `seen: ${r.toolResults[0]?.content}` },
        },
      ],
    }),
    { toolCalls: [{ name: "send_file", input: { path: "out/lines.txt", caption: "Counted" } }] },
    (r) => ({ text: `Done. ${r.toolResults[0]?.content ?? ""}` }),
  );
}

/** Resident memory of a process in bytes (Linux /proc). */
export function rssOf(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  if (!kb) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kb) * 1024;
}

/**
 * Run `work` while sampling the process's resident memory; returns its result
 * and the most the memory grew over the level before it started.
 */
export async function rssGrowthDuring<T>(
  pid: number,
  work: () => Promise<T>,
): Promise<{ result: T; growth: number }> {
  const before = rssOf(pid);
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssOf(pid));
  }, 20);
  try {
    const result = await work();
    peak = Math.max(peak, rssOf(pid));
    return { result, growth: peak - before };
  } finally {
    clearInterval(sampler);
  }
}
