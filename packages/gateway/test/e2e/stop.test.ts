import { spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import {
  type GatewayProcess,
  LOBU_BIN,
  type MockLlm,
  type SlackEmulator,
  type SlackMessage,
  startMockLlm,
  startSlackEmulator,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROVIDER_KEY, startSlackGateway, WAIT } from "../platforms/helpers.ts";
import { eventReader } from "../settings/helpers.ts";

/**
 * Stopping a running agent end to end: a real `lobu run`, real sandboxed
 * workers running a real `sleep` through bash, the Slack emulator and the
 * mock LLM. A stop (Stop button, `stop` message, stop reaction, REST) kills
 * the running tool's process, the reply says who stopped it, and the next
 * message is answered. In a shared channel only the sender or an admin may
 * stop a turn; a stop with nothing running says so.
 */

const SIGNING_SECRET = "slack-signing-secret-stop";
const BOT_TOKEN = "xoxb-7777-8888-stop";
const ADMIN = "UADMIN0001";
const SHARED = "C0SHARED01";
const DRIVER = spawnSync("bwrap", ["--version"]).status === 0 ? "process" : "host";

let llm: MockLlm;
let slack: SlackEmulator;
let gw: GatewayProcess;

/** Pids of live processes whose command line is `sleep <seconds>` (the marker of one test). */
function sleepers(seconds: number): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // A zombie is gone already (its parent has not reaped it yet).
      if (/\) Z /.test(stat)) continue;
      if (argv.some((a) => a.endsWith("sleep")) && argv.includes(String(seconds)))
        pids.push(Number(name));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

/** The mock LLM runs `sleep <seconds>` through bash for `text`; after it, it answers "slept". */
function scriptSleep(text: string, seconds: number): void {
  llm.when((r) => r.lastUserText === text, {
    toolCalls: [{ name: "bash", input: { command: `sleep ${seconds}; echo woke` } }],
  });
}

function sectionText(m: SlackMessage | undefined): string {
  return (m?.blocks ?? [])
    .filter((b) => (b as { type?: string }).type === "section")
    .map((b) => (b as { text: { text: string } }).text.text)
    .join("\n\n");
}

function stopButtons(m: SlackMessage): string[] {
  return (m.blocks ?? [])
    .filter((b) => (b as { type?: string }).type === "actions")
    .flatMap((b) => (b as { elements: { action_id: string }[] }).elements.map((e) => e.action_id))
    .filter((id) => id.startsWith("lobu-stop"));
}

/** Run the `lobu` CLI; resolves with its exit code and output. */
function lobu(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [LOBU_BIN, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Check `/proc` until `ok` (the emulators' waitFor re-checks only on their own changes). */
async function poll(ok: () => boolean, description: string): Promise<void> {
  const deadline = Date.now() + WAIT.timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${description}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const runningSleep = (seconds: number) =>
  poll(() => sleepers(seconds).length > 0, `a running sleep ${seconds}`);
const gone = (seconds: number) =>
  poll(() => sleepers(seconds).length === 0, `sleep ${seconds} killed`);

function botMessages(channel: string, threadTs?: string): SlackMessage[] {
  return slack.messages(channel, threadTs ? { threadTs } : {});
}

function waitForText(channel: string, pattern: RegExp, threadTs?: string): Promise<SlackMessage> {
  return slack.waitFor(
    () =>
      botMessages(channel, threadTs).find(
        (m) => pattern.test(sectionText(m)) || pattern.test(m.text),
      ),
    { ...WAIT, description: `a message matching ${pattern}` },
  );
}

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: PROVIDER_KEY });
  slack = await startSlackEmulator({
    signingSecret: SIGNING_SECRET,
    botToken: BOT_TOKEN,
    botName: "lobu",
    subscriptions: ["app_mention", "message.im", "message.channels", "reaction_added"],
  });
  slack.addUser({ id: ADMIN, name: "admin" });
  slack.addChannel({ id: SHARED, name: "team" });
  gw = await startSlackGateway({
    slack,
    llm,
    toml: [
      "[sandbox]",
      // Real processes: the test checks that the stopped tool's process is gone. The
      // host driver runs the same worker as the process driver, without bubblewrap.
      `driver = "${DRIVER}"`,
      ...(DRIVER === "host" ? ["allow_unsandboxed = true"] : []),
      'idle_timeout = "10m"',
      "",
      "[agents.default]",
      'group_routing = "per-channel"',
      "",
      "[admin]",
      `users = ["slack:${slack.teamId}:${ADMIN}"]`,
      "",
      "[platforms.slack]",
      'stream_interval = "200ms"',
    ].join("\n"),
  });
});

afterAll(async () => {
  await gw?.stop();
  await slack?.close();
  await llm?.close();
});

describe("stop from Slack", () => {
  it("the Stop button kills the running tool, says so, and the next message is answered", async () => {
    scriptSleep("long job one", 3001);
    llm.when((r) => r.lastUserText === "after the stop", { text: "still here" });
    const user = "USTOP00001";
    const dm = slack.imChannel(user).id;
    await slack.dm({ user, text: "long job one" });
    await runningSleep(3001);
    const live = await slack.waitFor(() => botMessages(dm).find((m) => stopButtons(m).length), {
      ...WAIT,
      description: "the streaming reply with its Stop buttons",
    });
    expect(stopButtons(live)).toHaveLength(2);

    await slack.clickButton({
      user,
      channel: dm,
      messageTs: live.ts,
      actionId: stopButtons(live)[0]!,
    });
    const stopped = await waitForText(dm, /Stopped by/);
    await gone(3001);
    // The final reply has no buttons left; the tool line stays, then who stopped it.
    expect(stopButtons(stopped)).toEqual([]);
    expect(sectionText(stopped)).toMatch(/⏹️ Stopped by/);

    await slack.dm({ user, text: "after the stop" });
    await waitForText(dm, /^still here$/);
    // The model got the next message; nothing of the stopped turn ran on.
    expect(llm.requests.some((r) => r.lastUserText === "after the stop")).toBe(true);
  });

  it("a `stop` message stops the turn without waiting behind it", async () => {
    scriptSleep("long job two", 3002);
    const user = "USTOP00002";
    const dm = slack.imChannel(user).id;
    await slack.dm({ user, text: "long job two" });
    await runningSleep(3002);
    await slack.dm({ user, text: "stop" });
    await waitForText(dm, /Stopped by/);
    await gone(3002);
    // The model never saw "stop": it is not a message for the agent.
    expect(llm.requests.some((r) => r.lastUserText === "stop")).toBe(false);
  });

  it("a stop reaction stops the reactor's turn", async () => {
    scriptSleep("long job three", 3003);
    const user = "USTOP00003";
    const dm = slack.imChannel(user).id;
    const sent = await slack.dm({ user, text: "long job three" });
    await runningSleep(3003);
    await slack.userReacts({ user, channel: dm, ts: sent.ts, name: "octagonal_sign" });
    await waitForText(dm, /Stopped by/);
    await gone(3003);
  });

  it("says so when nothing is running", async () => {
    const user = "USTOP00004";
    const dm = slack.imChannel(user).id;
    await slack.dm({ user, text: "stop" });
    await waitForText(dm, /Nothing is running in this conversation/);
  });

  it("in a shared channel, only the sender or an admin stops a turn", async () => {
    scriptSleep("long shared job", 3004);
    const alice = "USTOPALICE";
    const bob = "USTOPBOB01";
    const sent = await slack.mention({ user: alice, channel: SHARED, text: "long shared job" });
    await runningSleep(3004);
    const thread = sent.ts;
    const live = await slack.waitFor(
      () => botMessages(SHARED, thread).find((m) => stopButtons(m).length),
      { ...WAIT, description: "the streaming reply" },
    );

    // Bob's stop message and Bob's click are refused; the sleep goes on.
    await slack.mention({ user: bob, channel: SHARED, text: "stop", threadTs: thread });
    await waitForText(SHARED, /Only .* who sent the message, or an admin can stop/, thread);
    await slack.clickButton({
      user: bob,
      channel: SHARED,
      messageTs: live.ts,
      actionId: stopButtons(live)[0]!,
    });
    await slack.waitFor(
      () =>
        slack.world.ephemerals.find(
          (e) => e.user === bob && /who sent the message, or an admin/.test(e.text),
        ),
      { ...WAIT, description: "Bob told privately that he may not stop it" },
    );
    expect(sleepers(3004).length).toBeGreaterThan(0);

    // An admin may.
    await slack.mention({ user: ADMIN, channel: SHARED, text: "stop", threadTs: thread });
    await waitForText(SHARED, /Stopped by/, thread);
    await gone(3004);
  });
});

describe("stop over the REST API", () => {
  function send(user: string, text: string) {
    return gw.api("/api/v1/agents/default/messages", {
      method: "POST",
      headers: { accept: "text/event-stream" },
      body: JSON.stringify({ user, channel: "rest", text }),
    });
  }

  it("stops a message's turn; a second stop answers that nothing runs", async () => {
    scriptSleep("long rest job", 3005);
    const res = await send("rita", "long rest job");
    const messageId = res.headers.get("x-lobu-message-id")!;
    const events = eventReader(res);
    await runningSleep(3005);
    const stop = await gw.api(`/api/v1/messages/${messageId}/stop`, { method: "POST" });
    expect(stop.status).toBe(200);
    expect(await stop.json()).toMatchObject({ stopped: messageId, dropped: [] });
    const rest = await events.rest();
    expect(rest.at(-1)).toMatchObject({ type: "error", code: "turn_stopped" });
    await gone(3005);
    const record = await (await gw.api(`/api/v1/messages/${messageId}`)).json();
    expect(record).toMatchObject({ status: "stopped", error: { code: "turn_stopped" } });

    const again = await gw.api(`/api/v1/messages/${messageId}/stop`, { method: "POST" });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe(
      "turn_not_running",
    );
  });

  it("`queue=clear` drops the messages waiting behind the turn; they never run", async () => {
    scriptSleep("long job with a queue", 3006);
    const first = await send("quinn", "long job with a queue");
    const conversationId = first.headers.get("x-lobu-conversation-id")!;
    const firstEvents = eventReader(first);
    await runningSleep(3006);
    const second = await send("quinn", "queued one");
    const secondId = second.headers.get("x-lobu-message-id")!;
    const secondEvents = eventReader(second);

    const stop = await gw.api(`/api/v1/conversations/${conversationId}/stop?queue=clear`, {
      method: "POST",
    });
    expect(stop.status).toBe(200);
    expect(await stop.json()).toMatchObject({ dropped: [secondId], kept: 0 });
    expect((await firstEvents.rest()).at(-1)).toMatchObject({ code: "turn_stopped" });
    expect((await secondEvents.rest()).at(-1)).toMatchObject({ code: "turn_stopped" });
    await gone(3006);
    expect(llm.requests.some((r) => r.lastUserText === "queued one")).toBe(false);
  });

  it("`lobu stop` stops a turn from another terminal, and says when nothing runs", async () => {
    scriptSleep("long cli job", 3007);
    const res = await send("cleo", "long cli job");
    const messageId = res.headers.get("x-lobu-message-id")!;
    const events = eventReader(res);
    await runningSleep(3007);
    const env = { LOBU_GATEWAY_URL: gw.url, LOBU_TOKEN: gw.token };
    const first = await lobu(["stop", messageId], env);
    expect(first).toMatchObject({ code: 0 });
    expect(first.stdout).toContain(`stopped ${messageId}`);
    expect((await events.rest()).at(-1)).toMatchObject({ code: "turn_stopped" });
    await gone(3007);
    const again = await lobu(["stop", messageId], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/is not running .*nothing was stopped/);
  });

  it("`lobu chat` stops its streaming reply on Ctrl+C", async () => {
    scriptSleep("long chat job", 3008);
    const child = spawn(
      process.execPath,
      [LOBU_BIN, "chat", "--user", "cora", "--channel", "term", "-m", "long chat job"],
      {
        env: { ...process.env, LOBU_GATEWAY_URL: gw.url, LOBU_TOKEN: gw.token },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
    await runningSleep(3008);
    child.kill("SIGINT");
    // The first Ctrl+C stops the reply (the chat ends when its stream does), not the CLI.
    expect(await exited).toBe(1);
    expect(stderr).toMatch(/⏹ stopped msg_/);
    expect(stderr).toMatch(/⏹ Stopped by api:/);
    await gone(3008);
  });

  it("refuses a stop for someone else's turn to a user token", async () => {
    const made = await gw.api("/api/v1/tokens", {
      method: "POST",
      body: JSON.stringify({ name: "mia", role: "user", namespace: "shop", user: "mia" }),
    });
    const { token } = (await made.json()) as { token: string };
    const res = await send("rita", "hello there");
    const messageId = res.headers.get("x-lobu-message-id")!;
    await res.body?.cancel();
    const stop = await fetch(`${gw.url}/api/v1/messages/${messageId}/stop`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
    });
    expect(stop.status).toBe(403);
  });
});
