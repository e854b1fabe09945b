import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import {
  collectEvents,
  type GatewayProcess,
  type MockLlm,
  type RecordedRequest,
  replyText,
  type S3Emulator,
  startGatewayProcess,
  startMockLlm,
  startS3Emulator,
} from "@lobu/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { llmEnv } from "../platforms/helpers.ts";
import { eventReader } from "../settings/helpers.ts";
import { waitFor } from "../store/contract.ts";

/**
 * Several gateways as one (docs/deploy/multi-gateway.md), with real `lobu run`
 * processes on a real Redis (a key prefix of their own), each with its own data
 * dir, their volumes on one shared directory. Messages of several
 * conversations are sent round-robin to all three; one gateway is SIGKILLed in
 * the middle of a turn. Every message must be answered exactly once, and every
 * answer must show the agent saw exactly the conversation's earlier turns (its
 * transcript lives in the workspace, so a split workspace would forget them).
 */

const KEY = "sk-ant-multigw-e2e-0123456789abcdef";
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const PREFIX = `lobu-test:${randomBytes(6).toString("hex")}:`;
const ADMIN = `admin-${randomBytes(12).toString("hex")}`;
const CONVERSATIONS = 4;
/** A pool call journal of a gateway not in this test (its scope is not theirs). */
const FOREIGN_JOURNAL = (root: string) =>
  join(
    root,
    "volumes",
    ".lobu-pool",
    "pool-0.0123456789ab-5e3c8a1e-0000-4000-8000-000000000000.json",
  );

/** The conversation's message tokens (`c1-m2`) in the user turns the model was sent, oldest first. */
function userTokens(req: RecordedRequest): string[] {
  const messages = (req.body.messages ?? []) as { role: string; content: unknown }[];
  const out: string[] = [];
  for (const m of messages) {
    if (m.role !== "user") continue;
    const text =
      typeof m.content === "string"
        ? m.content
        : (m.content as { type: string; text?: string }[])
            .map((b) => (b.type === "text" ? (b.text ?? "") : ""))
            .join(" ");
    out.push(...(text.match(/\bc\d+-m\d+\b/g) ?? []));
  }
  return out;
}

let llm: MockLlm;
/** Told the message token of each model call as its (slow) stream begins. */
let onModelCall: ((token: string) => void) | undefined;
let shared: string;
const gateways: GatewayProcess[] = [];

async function dropKeys(prefix = PREFIX): Promise<void> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== "0");
  redis.disconnect();
}

/** The gateway instance holding a sandbox's placement lock (`<token> <owner>`), if any. */
async function placementHolder(sandboxId: string, prefix = PREFIX): Promise<string | undefined> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    const v = await redis.get(`${prefix}l:sandbox-placement:${sandboxId}`);
    return v ? v.slice(v.indexOf(" ") + 1) : undefined;
  } finally {
    redis.disconnect();
  }
}

/** A conversation's id (its sandbox's id) from what was sent. */
function conversationOf(sent: { conv: number; conversationId: string }[], conv: number): string {
  const found = sent.find((s) => s.conv === conv);
  if (!found) throw new Error(`nothing was sent to conversation ${conv}`);
  return found.conversationId;
}

beforeAll(async () => {
  // Slow streams, so a SIGKILL lands mid-turn; the reply names what the model was sent.
  llm = await startMockLlm({
    apiKey: KEY,
    defaultReply: (req) => {
      const tokens = userTokens(req);
      const current = tokens.at(-1) ?? "?";
      onModelCall?.(current);
      const text = `answer to ${current}; earlier: ${tokens.slice(0, -1).join("|") || "none"}`;
      return { text, chunks: text.match(/.{1,3}/g) ?? [text], delayMs: 250 };
    },
  });
  shared = mkdtempSync(join(tmpdir(), "lobu-shared-volumes-"));
  // Another gateway's pool call journal on the shared directory: no gateway here may clear it.
  mkdirSync(dirname(FOREIGN_JOURNAL(shared)), { recursive: true });
  writeFileSync(FOREIGN_JOURNAL(shared), "{}");
  const toml = clusterToml(PREFIX, [
    "max_concurrent = 2",
    // Sandboxes stop between turns, so a conversation moves between gateways too.
    'idle_timeout = "1s"',
    "[cluster]",
    'lease = "3s"',
    'volumes = "shared"',
    `volumes_path = "${shared}"`,
  ]);
  const env = clusterEnv();
  for (let i = 0; i < 3; i++) gateways.push(await startGatewayProcess({ toml, env }));
}, 180_000);

afterAll(async () => {
  for (const gw of gateways) await gw.stop().catch(() => {});
  await llm?.close();
  await dropKeys();
  if (shared && !process.env.LOBU_KEEP_TEST_DATA) rmSync(shared, { recursive: true, force: true });
});

/** lobu.toml of gateways sharing Redis under `prefix` and pools of one virtual sandbox, with `lines` added. */
function clusterToml(prefix: string, lines: string[]): string {
  return [
    "[store]",
    'driver = "redis"',
    `redis_url = "${REDIS_URL}"`,
    `key_prefix = "${prefix}"`,
    "[sandbox]",
    'driver = "virtual"',
    "pool_size = 1",
    ...lines,
  ].join("\n");
}

/** What every gateway of a cluster shares: the mock LLM as provider, one master key, the admin token. */
function clusterEnv(extra: Record<string, string> = {}): Record<string, string | undefined> {
  return {
    ...llmEnv(llm, KEY),
    LOBU_MASTER_KEY: randomBytes(32).toString("base64"),
    LOBU_ADMIN_TOKEN: ADMIN,
    ...extra,
  };
}

const api = (gw: GatewayProcess, path: string, init: RequestInit = {}) =>
  gw.api(path, {
    ...init,
    headers: { authorization: `Bearer ${ADMIN}`, ...(init.headers as Record<string, string>) },
  });

async function send(gw: GatewayProcess, conv: number, msg: number) {
  const res = await api(gw, "/api/v1/agents/default/messages", {
    method: "POST",
    body: JSON.stringify({ user: `u${conv}`, channel: "chaos", text: `c${conv}-m${msg}` }),
  });
  expect(res.status).toBe(202);
  const body = (await res.json()) as { messageId: string; conversationId: string };
  return { conv, msg, ...body };
}

describe("three gateways on one Redis", () => {
  it("answer every message exactly once with history intact when one is SIGKILLed mid-turn", async () => {
    const sent: Awaited<ReturnType<typeof send>>[] = [];
    // Two rounds round-robin over all three gateways...
    let next = 0;
    for (let m = 1; m <= 2; m++)
      for (let c = 1; c <= CONVERSATIONS; c++) sent.push(await send(gateways[next++ % 3]!, c, m));

    // ...then, as a model stream begins, kill the gateway running that turn (the stream is cut).
    const streaming = await new Promise<string>((resolve) => {
      onModelCall = resolve;
    });
    onModelCall = undefined;
    const conv = Number(/^c(\d+)-/.exec(streaming)?.[1]);
    const holder = await placementHolder(conversationOf(sent, conv));
    const victim = gateways.find((g) => holder?.includes(`:${g.child.pid}:`));
    expect(victim, `the gateway running ${streaming}`).toBeDefined();
    await victim!.kill("SIGKILL");
    const survivors = gateways.filter((g) => g !== victim);

    // A third round, to the survivors only.
    for (let c = 1; c <= CONVERSATIONS; c++)
      sent.push(await send(survivors[c % survivors.length]!, c, 3));

    // Any gateway streams any message's events (read from the shared store).
    for (const [i, s] of sent.entries()) {
      const on = survivors[i % survivors.length]!;
      const res = await api(on, `/api/v1/messages/${s.messageId}/events`, {
        headers: { accept: "text/event-stream" },
      });
      const events = await collectEvents(res);
      expect(events.at(-1)?.type, `message ${s.conv}-${s.msg}`).toBe("done");
      expect(replyText(events)).toMatch(new RegExp(`^answer to c${s.conv}-m${s.msg};`));
    }

    // The kill cut a turn's model stream: it was mid-turn.
    expect(llm.requests.some((r) => r.aborted)).toBe(true);

    // One transcript per conversation: each answer names exactly the earlier turns, each answer
    // is recorded once, and the history reads the same on every surviving gateway.
    const conversationIds = new Map(sent.map((s) => [s.conv, s.conversationId]));
    for (let c = 1; c <= CONVERSATIONS; c++) {
      const expected = [1, 2, 3].flatMap((m) => [
        { role: "user", text: `c${c}-m${m}` },
        {
          role: "assistant",
          text: `answer to c${c}-m${m}; earlier: ${
            Array.from({ length: m - 1 }, (_, i) => `c${c}-m${i + 1}`).join("|") || "none"
          }`,
        },
      ]);
      for (const on of survivors) {
        const res = await api(on, `/api/v1/conversations/${conversationIds.get(c)}/messages`);
        const { messages } = (await res.json()) as {
          messages: { role: string; text: string }[];
        };
        const said = messages
          .filter((m) => m.role === "user" || m.role === "assistant")
          .map((m) => ({ role: m.role, text: m.text }));
        expect(said, `conversation ${c} on ${on.url}`).toEqual(expected);
      }
    }

    // Every message record is done, read on any gateway.
    for (const s of sent) {
      const res = await api(survivors[0]!, `/api/v1/messages/${s.messageId}`);
      expect(((await res.json()) as { status: string }).status).toBe("done");
    }

    // One workspace per conversation, on the shared volume directory (none in the data dirs).
    for (const gw of gateways) expect(existsSync(join(gw.dataDir, "volumes"))).toBe(false);

    // Every gateway started pools and cleared its own old pool journals, not another's.
    expect(existsSync(FOREIGN_JOURNAL(shared))).toBe(true);
  }, 240_000);
});

describe("operators' sandbox commands on two gateways", () => {
  const pair: GatewayProcess[] = [];
  const prefix = `lobu-test:${randomBytes(6).toString("hex")}:`;
  let volumes: string;

  beforeAll(async () => {
    volumes = mkdtempSync(join(tmpdir(), "lobu-shared-volumes-"));
    const toml = clusterToml(prefix, [
      'idle_timeout = "10m"',
      "[agents.default.policy]",
      'tools = { bash = "ask" }',
      "[cluster]",
      'lease = "3s"',
      'volumes = "shared"',
      `volumes_path = "${volumes}"`,
    ]);
    const env = clusterEnv();
    for (let i = 0; i < 2; i++) pair.push(await startGatewayProcess({ toml, env }));
  }, 120_000);

  afterAll(async () => {
    for (const gw of pair) await gw.stop().catch(() => {});
    await dropKeys(prefix);
    if (volumes) rmSync(volumes, { recursive: true, force: true });
  });

  type Listed = { id: string; state: string; owner?: string };
  const list = async (gw: GatewayProcess) =>
    ((await (await api(gw, "/api/v1/sandboxes")).json()) as { sandboxes: Listed[] }).sandboxes;

  async function chat(gw: GatewayProcess, text: string) {
    const res = await api(gw, "/api/v1/agents/default/messages", {
      method: "POST",
      headers: { accept: "text/event-stream" },
      body: JSON.stringify({ user: "ops", channel: "ops", text }),
    });
    return replyText(await collectEvents(res));
  }

  it("list every gateway's sandboxes, and stop and reset act where the sandbox runs", async () => {
    expect(await chat(pair[0]!, "c9-m1")).toBe("answer to c9-m1; earlier: none");
    const [running] = await list(pair[0]!);
    expect(running?.state).toBe("running");
    const runner = pair.find((g) => running?.owner?.includes(`:${g.child.pid}:`))!;
    const other = pair.find((g) => g !== runner)!;
    // The other gateway lists it as running, on the gateway that runs it.
    expect(await list(other)).toEqual([
      expect.objectContaining({ id: running!.id, state: "running", owner: running!.owner }),
    ]);
    // Exec is refused where it does not run, naming where it does.
    const exec = await api(other, `/api/v1/sandboxes/${running!.id}/exec`, {
      method: "POST",
      body: JSON.stringify({ argv: ["true"] }),
    });
    expect(exec.status).toBe(409);
    expect(await exec.text()).toContain("sandbox_elsewhere");

    // Stopped from the other gateway: it stops on the gateway running it.
    const stop = await api(other, `/api/v1/sandboxes/${running!.id}/stop`, { method: "POST" });
    expect(await stop.json()).toEqual({ stopped: true });
    await waitFor(
      async () => (await list(runner)).every((s) => s.state === "stopped"),
      "the sandbox to stop where it ran",
      10_000,
    );
    expect((await list(other))[0]?.state).toBe("stopped");

    // The conversation goes on, from the other gateway, with its transcript.
    expect(await chat(other, "c9-m2")).toBe("answer to c9-m2; earlier: c9-m1");

    // Reset (wipe) from the gateway not running it: the transcript is gone.
    const [now] = await list(runner);
    const asked = pair.find((g) => !now?.owner?.includes(`:${g.child.pid}:`))!;
    const reset = await api(asked, `/api/v1/sandboxes/${now!.id}/reset`, {
      method: "POST",
      body: JSON.stringify({ wipe: true }),
    });
    expect(await reset.json()).toMatchObject({ id: now!.id, stopped: true, wiped: true });
    expect(await chat(asked, "c9-m3")).toBe("answer to c9-m3; earlier: none");
  }, 120_000);

  it("resolve an approval asked on one gateway from the other", async () => {
    llm.when(
      (r) => r.lastUserText === "c8-m1 run it",
      { toolCalls: [{ name: "bash", input: { command: "echo approved-here" } }] },
      (r) => ({ text: `ran: ${r.toolResults[0]?.content.trim()}` }),
    );
    const res = await api(pair[1]!, "/api/v1/agents/default/messages", {
      method: "POST",
      headers: { accept: "text/event-stream" },
      body: JSON.stringify({ user: "ops8", channel: "ops", text: "c8-m1 run it" }),
    });
    const sandboxId = res.headers.get("x-lobu-conversation-id");
    const events = eventReader(res);
    const card = await events.until("approval_request");
    const listed = (await list(pair[0]!)).find((s) => s.id === sandboxId);
    const runner = pair.find((g) => listed?.owner?.includes(`:${g.child.pid}:`));
    expect(runner, "the gateway running the turn").toBeDefined();
    const other = pair.find((g) => g !== runner)!;
    const answered = await api(other, `/api/v1/requests/${card.requestId}/answer`, {
      method: "POST",
      body: JSON.stringify({ choice: "approve" }),
    });
    expect(answered.status).toBe(200);
    const rest = await events.rest();
    expect(rest).toContainEqual(
      expect.objectContaining({ type: "request_resolved", requestId: card.requestId }),
    );
    expect(rest.at(-1)).toMatchObject({ type: "done", text: "ran: approved-here" });
  }, 120_000);
  it("resolve a pending approval from its original card after the gateway asking it is SIGKILLed", async () => {
    llm.when(
      (r) => r.lastUserText === "c6-m1 run it",
      // Asked by the first attempt, then by the re-run on the survivor.
      { toolCalls: [{ name: "bash", input: { command: "echo survived" } }] },
      { toolCalls: [{ name: "bash", input: { command: "echo survived" } }] },
      (r) => ({ text: `ran: ${r.toolResults[0]?.content.trim()}` }),
    );
    const res = await api(pair[0]!, "/api/v1/agents/default/messages", {
      method: "POST",
      headers: { accept: "text/event-stream" },
      body: JSON.stringify({ user: "ops6", channel: "ops", text: "c6-m1 run it" }),
    });
    const messageId = res.headers.get("x-lobu-message-id")!;
    const sandboxId = res.headers.get("x-lobu-conversation-id")!;
    const card = await eventReader(res).until("approval_request");
    // The gateway running the turn dies while the approval waits for the person.
    const holder = await placementHolder(sandboxId, prefix);
    const victim = pair.find((g) => holder?.includes(`:${g.child.pid}:`));
    expect(victim, "the gateway running the turn").toBeDefined();
    await victim!.kill("SIGKILL");
    const survivor = pair.find((g) => g !== victim)!;

    // The survivor re-runs the turn: it waits on the same approval instead of asking anew...
    const stream = eventReader(
      await api(survivor, `/api/v1/messages/${messageId}/events`, {
        headers: { accept: "text/event-stream" },
      }),
    );
    await stream.until("approval_request"); // the dead gateway's, from the message's log
    const again = await stream.until("approval_request");
    expect(again.requestId).toBe(card.requestId);
    // ...so the person's click on the card they have resolves the re-run turn.
    const answered = await api(survivor, `/api/v1/requests/${card.requestId}/answer`, {
      method: "POST",
      body: JSON.stringify({ choice: "approve" }),
    });
    expect(answered.status).toBe(200);
    const rest = await stream.rest();
    expect(rest).toContainEqual(
      expect.objectContaining({ type: "request_resolved", requestId: card.requestId }),
    );
    expect(rest.at(-1)).toMatchObject({ type: "done", text: "ran: survived" });
    // No other request was asked for it.
    const asked = new Set(
      rest.filter((e) => e.type === "approval_request").map((e) => e.requestId),
    );
    expect([...asked]).toEqual([card.requestId]);
  }, 120_000);
});

describe("volumes in S3-compatible object storage", () => {
  const pair: GatewayProcess[] = [];
  const prefix = `lobu-test:${randomBytes(6).toString("hex")}:`;
  const creds = { accessKeyId: "AKIALOBUE2E", secretAccessKey: "lobu-e2e-s3-secret" };
  let s3: S3Emulator;
  let start: () => Promise<GatewayProcess>;

  beforeAll(async () => {
    s3 = await startS3Emulator({ ...creds, buckets: ["lobu-volumes"] });
    const toml = clusterToml(prefix, [
      'idle_timeout = "10m"',
      "[cluster]",
      'lease = "3s"',
      'volumes = "s3"',
      "[cluster.s3]",
      'bucket = "lobu-volumes"',
      'prefix = "e2e/"',
      `endpoint = "${s3.url}"`,
      "force_path_style = true",
    ]);
    const env = clusterEnv({
      AWS_ACCESS_KEY_ID: creds.accessKeyId,
      AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
    });
    start = () => startGatewayProcess({ toml, env });
    for (let i = 0; i < 2; i++) pair.push(await start());
  }, 120_000);

  afterAll(async () => {
    for (const gw of pair) await gw.stop().catch(() => {});
    await s3?.close();
    await dropKeys(prefix);
  });

  async function chat(gw: GatewayProcess, text: string) {
    const res = await api(gw, "/api/v1/agents/default/messages", {
      method: "POST",
      headers: { accept: "text/event-stream" },
      body: JSON.stringify({ user: "s3user", channel: "s3", text }),
    });
    return replyText(await collectEvents(res));
  }

  it("a conversation continues on another gateway from the volume saved when its gateway stopped", async () => {
    expect(await chat(pair[0]!, "c7-m1")).toBe("answer to c7-m1; earlier: none");
    // Whichever gateway ran it: stopping that gateway saves the volume, then frees the sandbox.
    const listed = (
      (await (await api(pair[0]!, "/api/v1/sandboxes")).json()) as {
        sandboxes: { owner?: string }[];
      }
    ).sandboxes;
    const runner = pair.find((g) => listed[0]?.owner?.includes(`:${g.child.pid}:`));
    expect(runner, "the gateway running the sandbox").toBeDefined();
    const survivor = pair.find((g) => g !== runner)!;
    await runner!.kill("SIGTERM");
    expect([...(s3.objects.get("lobu-volumes")?.keys() ?? [])]).toEqual([
      expect.stringMatching(/^e2e\/volumes\/.+\.tar$/),
    ]);
    // The survivor fetches it: the agent remembers.
    expect(await chat(survivor, "c7-m2")).toBe("answer to c7-m2; earlier: c7-m1");
    expect(s3.refused).toBe(0);
  }, 120_000);

  it("a SIGKILLed gateway's conversation continues with every completed turn (saved after each)", async () => {
    // A second gateway again (the test above stopped one).
    pair.push(await start());
    const alive = pair.filter((g) => g.child.exitCode === null && g.child.signalCode === null);
    expect(alive).toHaveLength(2);
    const say = async (gw: GatewayProcess, text: string) => {
      const res = await api(gw, "/api/v1/agents/default/messages", {
        method: "POST",
        headers: { accept: "text/event-stream" },
        body: JSON.stringify({ user: "s3kill", channel: "s3", text }),
      });
      const sandboxId = res.headers.get("x-lobu-conversation-id")!;
      return { sandboxId, text: replyText(await collectEvents(res)) };
    };
    expect((await say(alive[0]!, "c5-m1")).text).toBe("answer to c5-m1; earlier: none");
    const { sandboxId, text } = await say(alive[1]!, "c5-m2");
    expect(text).toBe("answer to c5-m2; earlier: c5-m1");
    // Saved after the turn while the sandbox still runs (idle_timeout is 10 minutes).
    const saved = () =>
      s3.objects.get("lobu-volumes")?.get(`e2e/volumes/${sandboxId}.tar`)?.body.toString("latin1");
    await waitFor(
      async () => saved()?.includes("answer to c5-m2") ?? false,
      "the volume saved after the second turn",
      30_000,
    );
    const holder = await placementHolder(sandboxId, prefix);
    const runner = alive.find((g) => holder?.includes(`:${g.child.pid}:`));
    expect(runner, "the gateway running the sandbox").toBeDefined();
    await runner!.kill("SIGKILL");
    const survivor = alive.find((g) => g !== runner)!;
    // The survivor fetches the volume saved after the last completed turn: nothing is forgotten.
    expect((await say(survivor, "c5-m3")).text).toBe("answer to c5-m3; earlier: c5-m1|c5-m2");
    expect(s3.refused).toBe(0);
    expect(s3.conditionsRefused).toBe(0);
  }, 120_000);
});
