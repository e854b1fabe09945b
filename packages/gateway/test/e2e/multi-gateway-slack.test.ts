import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type GatewayProcess,
  type MockLlm,
  type SlackEmulator,
  type SlackMessage,
  startGatewayProcess,
  startMockLlm,
  startSlackEmulator,
} from "@lobu/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { llmEnv, PROVIDER_KEY, slackEnv, slowText, WAIT } from "../platforms/helpers.ts";

/**
 * A reply a gateway was streaming into Slack when it was SIGKILLed: the
 * survivor re-running the turn takes over that message (its reference is
 * kept in the shared store as the turn streams) and finishes it there, so
 * the person sees exactly one reply per message (docs/deploy/multi-gateway.md).
 * Two real `lobu run` processes on one Redis (a key prefix of their own), the
 * Slack emulator delivering to one of them, the mock LLM streaming slowly.
 */

const SIGNING_SECRET = "slack-signing-secret-multigw";
const BOT_TOKEN = "xoxb-5151-6262-multigw";
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const PREFIX = `lobu-test:${randomBytes(6).toString("hex")}:`;
const ADMIN = `admin-${randomBytes(12).toString("hex")}`;

let llm: MockLlm;
let slack: SlackEmulator;
let volumes: string;
const gateways: GatewayProcess[] = [];

function sectionText(m: SlackMessage | undefined): string {
  return (m?.blocks ?? [])
    .filter((b) => (b as { type?: string }).type === "section")
    .map((b) => (b as { text: { text: string } }).text.text)
    .join("\n\n");
}

const hasStop = (m: SlackMessage) =>
  (m.blocks ?? []).some((b) => (b as { type?: string }).type === "actions");

beforeAll(async () => {
  llm = await startMockLlm({
    apiKey: PROVIDER_KEY,
    // A slow stream that names the message and the earlier ones the model was sent.
    defaultReply: (req) => {
      const said = req.body.messages as { role: string; content: unknown }[];
      const tokens = said
        .filter((m) => m.role === "user")
        .flatMap((m) => JSON.stringify(m.content).match(/\bs\d+-m\d+\b/g) ?? []);
      const current = tokens.at(-1) ?? "?";
      const text = `answer to ${current}; earlier: ${tokens.slice(0, -1).join("|") || "none"}`;
      return slowText(text, 20, 300);
    },
  });
  slack = await startSlackEmulator({
    signingSecret: SIGNING_SECRET,
    botToken: BOT_TOKEN,
    botName: "lobu",
    subscriptions: ["message.im"],
  });
  volumes = mkdtempSync(join(tmpdir(), "lobu-shared-volumes-"));
  const toml = [
    "[store]",
    'driver = "redis"',
    `redis_url = "${REDIS_URL}"`,
    `key_prefix = "${PREFIX}"`,
    "[sandbox]",
    'driver = "virtual"',
    "pool_size = 1",
    'idle_timeout = "10m"',
    "[cluster]",
    'lease = "3s"',
    'volumes = "shared"',
    `volumes_path = "${volumes}"`,
    "[platforms.slack]",
    'stream_interval = "200ms"',
  ].join("\n");
  const env = {
    ...llmEnv(llm),
    LOBU_MASTER_KEY: randomBytes(32).toString("base64"),
    LOBU_ADMIN_TOKEN: ADMIN,
    ...slackEnv(slack),
  };
  for (let i = 0; i < 2; i++) gateways.push(await startGatewayProcess({ toml, env }));
  // The load balancer sends Slack's deliveries to the first gateway.
  slack.eventsUrl = `${gateways[0]!.url}/slack/events`;
}, 120_000);

afterAll(async () => {
  for (const gw of gateways) await gw.stop().catch(() => {});
  await slack?.close();
  await llm?.close();
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const keys = await redis.keys(`${PREFIX}*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  if (volumes) rmSync(volumes, { recursive: true, force: true });
});

describe("a reply streaming into Slack when its gateway dies", () => {
  it("is finished in the same message by the survivor: one reply per message", async () => {
    const user = "UMULTIGW01";
    const dm = slack.imChannel(user).id;
    await slack.dm({ user, text: "s1-m1 tell me" });

    // The reply is streaming: part of the answer is on screen, Stop buttons still there.
    const partial = await slack.waitFor(
      () =>
        slack
          .messages(dm)
          .find(
            (m) =>
              hasStop(m) &&
              /^answer to s1-m1/.test(sectionText(m)) &&
              !/none$/.test(sectionText(m)),
          ),
      { ...WAIT, description: "a partly streamed reply" },
    );

    // Kill the gateway running the turn (the holder of the sandbox's placement).
    const listed = (await (
      await gateways[0]!.api("/api/v1/sandboxes", {
        headers: { authorization: `Bearer ${ADMIN}` },
      })
    ).json()) as { sandboxes: { owner?: string }[] };
    const victim = gateways.find((g) => listed.sandboxes[0]?.owner?.includes(`:${g.child.pid}:`));
    expect(victim, "the gateway running the turn").toBeDefined();
    await victim!.kill("SIGKILL");
    const survivor = gateways.find((g) => g !== victim)!;
    slack.eventsUrl = `${survivor.url}/slack/events`;

    // The survivor re-runs the turn into the same message, which ends without Stop buttons.
    const final = await slack.waitFor(
      () => {
        const m = slack.message(dm, partial.ts);
        return m && !hasStop(m) && sectionText(m) === "answer to s1-m1; earlier: none"
          ? m
          : undefined;
      },
      { timeoutMs: 60_000, description: "the reply finished in the message that was cut" },
    );
    expect(final.ts).toBe(partial.ts);
    // Exactly one message from the bot, ever (none posted and deleted meanwhile).
    expect(slack.messages(dm, { includeDeleted: true }).map((m) => m.ts)).toEqual([partial.ts]);
    // The model was asked twice (the cut attempt, the re-run), and the re-run finished.
    expect(llm.requests.filter((r) => r.lastUserText?.includes("s1-m1")).length).toBe(2);

    // The conversation goes on with its history: the next reply is a message of its own.
    await slack.dm({ user, text: "s1-m2 and then" });
    await slack.waitFor(
      () =>
        slack
          .messages(dm)
          .find((m) => !hasStop(m) && sectionText(m) === "answer to s1-m2; earlier: s1-m1"),
      { timeoutMs: 60_000, description: "the next reply" },
    );
    expect(slack.messages(dm, { includeDeleted: true })).toHaveLength(2);
  }, 180_000);
});
