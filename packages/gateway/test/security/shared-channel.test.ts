import { randomBytes } from "node:crypto";
import {
  type GatewayProcess,
  type MockLlm,
  type MockTurn,
  type RecordedRequest,
  type SlackEmulator,
  startSlackEmulator,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { conversationsOf, historyOf } from "../platforms/helpers.ts";
import { openSettings } from "../settings/helpers.ts";
import {
  curlStatus,
  curlStep,
  digRelay,
  freshSecret,
  sections,
  startTarget,
  type Target,
  type Upstream,
} from "./helpers.ts";

/**
 * A channel's shared sandbox (`group_routing = "per-channel"`) is used by
 * everyone in the channel, one turn after another. The rule: a person's own
 * credentials, domains and model key act only in that person's own turns, and
 * usage is charged to the turn's sender. Alice sets her own secret, provider key
 * and domain on her settings page; Bob, in the same channel, has none. Both talk
 * to the agent through the Slack emulator; the agent leaves Alice's placeholders
 * in the shared workspace for Bob's turn to try.
 */

const INSTALL_KEY = freshSecret("sk-ant-install-");
const ALICE_KEY = freshSecret("sk-ant-alice-");
const ALICE_GITHUB = freshSecret("ghp_alice_");
const SIGNING_SECRET = "slack-signing-secret-shared-channel";
const BOT_TOKEN = "xoxb-3333-4444-sharedchannel";
const TEAM = "T0TEAM0001";
const ALICE = "UALICE";
const BOB = "UBOB";
const aliceKey = `slack:${TEAM}:${ALICE}`;
const bobKey = `slack:${TEAM}:${BOB}`;

let target: Target;
let gw: GatewayProcess;
let llm: MockLlm;
let slack: SlackEmulator;
let secure: Upstream;
let channel: string;

beforeAll(async () => {
  slack = await startSlackEmulator({
    signingSecret: SIGNING_SECRET,
    botToken: BOT_TOKEN,
    botName: "lobu",
    subscriptions: ["app_mention", "message.im", "message.channels"],
  });
  target = await startTarget({
    providerKey: INSTALL_KEY,
    // Both keys are valid at the provider: the test asserts which one each call carried.
    llmChecksKey: false,
    toml: `
[network]
allow_private_ranges = ["127.0.0.1/32"]

[agents.default]
group_routing = "per-channel"

[agents.default.secrets]
GITHUB_TOKEN = { secret = "github", hosts = ["secure.allowed.test"] }
`,
    resolve: ["secure.allowed.test=127.0.0.1", "alice-only.example=127.0.0.1"],
    env: {
      SLACK_BOT_TOKEN: BOT_TOKEN,
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_API_URL: slack.apiUrl,
    },
  });
  ({ gw, llm } = target);
  slack.eventsUrl = `${gw.url}/slack/events`;
  secure = await target.upstream("secure.allowed.test");
  channel = slack.addChannel({ name: "shared" }).id;

  // Alice's own secret, provider key and domain, from her settings page (opened from a DM).
  await slack.dm({ user: ALICE, text: "settings" });
  const im = slack.imChannel(ALICE).id;
  const dm = await slack.waitFor(
    () => slack.messages(im).find((m) => JSON.stringify(m.blocks ?? []).includes("/settings")),
    { timeoutMs: 30_000, description: "Alice's settings button" },
  );
  const url = /"url":"([^"]+\/settings[^"]*)"/.exec(JSON.stringify(dm.blocks))![1]!;
  const me = await openSettings(gw, url);
  for (const [method, path, body] of [
    ["PUT", "/secrets/github", { value: ALICE_GITHUB }],
    ["PUT", "/keys/anthropic", { value: ALICE_KEY }],
    ["POST", "/domains", { name: "alice-only.example" }],
  ] as const) {
    const res = await me.call(method, path, body);
    expect(res.status, `${method} ${path}: ${await res.clone().text()}`).toBe(200);
  }
});

afterAll(async () => {
  await target?.stop();
  await slack?.close();
});

interface Turn {
  tag: string;
  /** Model calls of this turn, in order. */
  calls(): RecordedRequest[];
  /** Resolves with the bash tool's output once the agent has answered. */
  done: Promise<string>;
}

/**
 * `user` mentions the agent in the shared channel; the agent runs `command` in
 * bash, then answers. `first` replaces the turn's first model answer (to hold it).
 */
async function mention(
  user: string,
  command: string,
  opts: { first?: (bash: MockTurn) => MockTurn } = {},
): Promise<Turn> {
  const tag = `turn ${randomBytes(4).toString("hex")}`;
  const match = (r: RecordedRequest) => r.lastUserText === tag;
  const bash: MockTurn = { toolCalls: [{ name: "bash", input: { command } }] };
  llm.when(match, opts.first ? opts.first(bash) : bash, { text: `finished ${tag}` });
  const sent = await slack.mention({ user, channel, text: tag });
  expect(sent.status).toBe(200);
  const calls = () => llm.requests.filter(match);
  const done = answered(`finished ${tag}`).then(
    () => calls().at(-1)?.toolResults[0]?.content ?? "",
  );
  return { tag, calls, done };
}

/** Until the channel's shared conversation has this answer (bounded by the test's timeout). */
async function answered(text: string): Promise<void> {
  for (;;) {
    for (const conv of await conversationsOf(gw, "*")) {
      const history = await historyOf(gw, conv.id);
      if (history.some((e) => e.role === "assistant" && e.text === text)) return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

const url = (path: string) => `https://secure.allowed.test:${secure.port}${path}`;

async function usageOf(userKey: string): Promise<number> {
  const res = await gw.api("/api/v1/usage");
  const { usage } = (await res.json()) as { usage: { userKey: string; requests: number }[] };
  return usage.filter((u) => u.userKey === userKey).reduce((n, u) => n + u.requests, 0);
}

describe("a channel's shared sandbox", () => {
  let alicePlaceholder = "";

  it("Alice's turn uses her own secret, key and domain, even while Bob's message waits behind it", async () => {
    // Bob writes while Alice's turn is running (his message queues behind hers): the
    // conversation's latest poster is Bob, but the turn is still Alice's.
    const bobWrote = Promise.withResolvers<void>();
    const heldCall = llm.requests.length + 1;
    const aliceTurn = await mention(
      ALICE,
      [
        'echo "### token"; echo "$GITHUB_TOKEN"; echo "$GITHUB_TOKEN" > alice-token.txt',
        curlStep("call", `-H "Authorization: Bearer $GITHUB_TOKEN" ${url("/alice")}`),
        curlStep("domain", "http://alice-only.example/"),
        digRelay('open("alice-relay.txt", "w").write(key or "")\nprint("### relay")\nprint(key)'),
      ].join("\n"),
      {
        first: (bash) => async () => {
          await bobWrote.promise;
          return bash;
        },
      },
    );
    await llm.waitForRequests(heldCall, { timeoutMs: 30_000 });
    expect(aliceTurn.calls()).toHaveLength(1);
    const bobTurn = await mention(BOB, 'echo "### waiting"');
    bobWrote.resolve();
    const got = sections(await aliceTurn.done);
    alicePlaceholder = got.get("token")!.trim();
    expect(alicePlaceholder).toMatch(/^lobu_secret_/);
    expect(curlStatus(got.get("call")!).http).toBe(200);
    expect(secure.received.find((r) => r.url === "/alice")?.headers.authorization).toBe(
      `Bearer ${ALICE_GITHUB}`,
    );
    // Her own domain is hers in her turn: the proxy treats it as a person's grant
    // (which never reaches a private address), not as an unknown host.
    expect(got.get("domain")).toContain("is allowed only from the settings page");
    expect(got.get("relay")!.trim()).toMatch(/^lobu_secret_/);
    // Every model call of her turn used her own key.
    expect(aliceTurn.calls().map((r) => r.apiKey)).toEqual([ALICE_KEY, ALICE_KEY]);
    await bobTurn.done;
    // ...and is charged to her, not to Bob who had written by then: her two model
    // calls and the model listing her agent made with the placeholder it dug out.
    expect(await usageOf(aliceKey)).toBe(3);
    expect(await usageOf(bobKey)).toBe(2);
  });

  it("Bob's turn gets none of it: no env placeholder, no swap of hers, not her domain, not her key", async () => {
    const before = await usageOf(bobKey);
    const bob = await mention(
      BOB,
      [
        // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion
        'echo "### env"; echo "${GITHUB_TOKEN:-unset}"',
        // Nothing is bound to the host in Bob's turn, so the proxy only tunnels: -k
        // accepts the stand-in public CA the sandbox does not know.
        curlStep("replay", `-k -H "Authorization: Bearer $(cat alice-token.txt)" ${url("/bob")}`),
        curlStep("domain", "http://alice-only.example/"),
        digRelay(`
theirs = open("alice-relay.txt").read()
status, text = call("POST", "/v1/messages", theirs, b'{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"attack-alice-key"}]}')
print("### relay")
print(status, text)
`),
      ].join("\n"),
    );
    const got = sections(await bob.done);
    expect(got.get("env")!.trim()).toBe("unset");
    // The bound host got Alice's placeholder, never her value.
    expect(curlStatus(got.get("replay")!).http).toBe(200);
    expect(secure.received.find((r) => r.url === "/bob")?.headers.authorization).toBe(
      `Bearer ${alicePlaceholder}`,
    );
    expect(got.get("domain")).toContain(
      "alice-only.example is not in the agent's network allow list",
    );
    expect(got.get("relay")).toMatch(/^401 .*authentication_error/);
    expect(llm.requests.some((r) => r.lastUserText === "attack-alice-key")).toBe(false);
    // Bob's own turn runs on the installation's key, charged to Bob (two model calls
    // and the listing made while digging out his own relay placeholder).
    expect(bob.calls().map((r) => r.apiKey)).toEqual([INSTALL_KEY, INSTALL_KEY]);
    expect(await usageOf(bobKey)).toBe(before + 3);
    expect(await usageOf(aliceKey)).toBe(3);
    expect(JSON.stringify(secure.received.filter((r) => r.url === "/bob"))).not.toContain(
      ALICE_GITHUB,
    );
  });

  it("Alice's next turn still works, with a fresh placeholder", async () => {
    const alice = await mention(
      ALICE,
      [
        'echo "### token"; echo "$GITHUB_TOKEN"',
        curlStep("call", `-H "Authorization: Bearer $GITHUB_TOKEN" ${url("/alice-again")}`),
        curlStep("old", `-H "Authorization: Bearer $(cat alice-token.txt)" ${url("/alice-old")}`),
      ].join("\n"),
    );
    const got = sections(await alice.done);
    const fresh = got.get("token")!.trim();
    expect(fresh).toMatch(/^lobu_secret_/);
    expect(fresh).not.toBe(alicePlaceholder);
    expect(secure.received.find((r) => r.url === "/alice-again")?.headers.authorization).toBe(
      `Bearer ${ALICE_GITHUB}`,
    );
    // Her previous turn's placeholder was revoked when that turn ended.
    expect(secure.received.find((r) => r.url === "/alice-old")?.headers.authorization).toBe(
      `Bearer ${alicePlaceholder}`,
    );
    expect(alice.calls().map((r) => r.apiKey)).toEqual([ALICE_KEY, ALICE_KEY]);
    expect(await usageOf(aliceKey)).toBe(5);
  });
});
