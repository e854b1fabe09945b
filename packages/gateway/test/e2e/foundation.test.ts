import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  collectEvents,
  descendants,
  type GatewayProcess,
  LOBU_BIN,
  leaksOnHost,
  type MockLlm,
  replyText,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * The walking skeleton, end to end: a real `lobu run` process, real sandboxed
 * worker processes running the pi runtime, the mock provider over HTTP.
 */

const REAL_KEY = "sk-ant-real-key-DO-NOT-LEAK-0123456789abcdef";
let llm: MockLlm;
let gw: GatewayProcess;

function send(user: string, text: string, channel = "dev", agent = "default") {
  return gw.api(`/api/v1/agents/${agent}/messages`, {
    method: "POST",
    headers: { accept: "text/event-stream" },
    body: JSON.stringify({ user, channel, text }),
  });
}

async function sandboxes(): Promise<
  { id: string; key: { userId: string }; pid?: number; state: string }[]
> {
  const res = await gw.api("/api/v1/sandboxes");
  return (
    (await res.json()) as {
      sandboxes: { id: string; key: { userId: string }; pid?: number; state: string }[];
    }
  ).sandboxes;
}

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [LOBU_BIN, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    // "close", not "exit": at "exit" the last output may still be unread in the pipes.
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: REAL_KEY });
  gw = await startGatewayProcess({
    toml: `[sandbox]\nidle_timeout = "10m"\n`,
    env: { ANTHROPIC_API_KEY: REAL_KEY, ANTHROPIC_BASE_URL: llm.url, OPENAI_API_KEY: undefined },
  });
});

afterAll(async () => {
  await gw?.stop();
  await llm?.close();
});

describe("foundation end to end", () => {
  it("streams a reply to a REST message", async () => {
    const events = await collectEvents(await send("alice", "hello there"));
    expect(events.some((e) => e.type === "text_delta")).toBe(true);
    expect(replyText(events)).toBe("echo: hello there");
    // The provider saw the real key (swapped by the gateway), never a placeholder.
    expect(llm.requests.at(-1)?.apiKey).toBe(REAL_KEY);
  });

  it("answers through `lobu chat --message`", async () => {
    const r = await runCli([
      "chat",
      "--gateway",
      gw.url,
      "--token",
      gw.token,
      "--user",
      "alice",
      "--channel",
      "dev",
      "--message",
      "from the cli",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe("echo: from the cli");
  });

  it("fails `lobu chat` clearly when the gateway is unreachable", async () => {
    const r = await runCli([
      "chat",
      "--gateway",
      "http://127.0.0.1:9",
      "--token",
      "x",
      "--message",
      "hi",
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot reach the gateway/);
  });

  it("runs a bash tool call inside the worker's volume and returns the result to the model", async () => {
    llm.when((req) => req.lastUserText === "make a note", {
      toolCalls: [
        {
          name: "bash",
          input: { command: "echo noted-by-alice > note.txt && cat note.txt && pwd" },
        },
      ],
    });
    llm.when((req) => req.lastUserText === "make a note", { text: "Saved your note." });
    const events = await collectEvents(await send("alice", "make a note"));
    expect(replyText(events)).toBe("Saved your note.");
    const call = events.find((e) => e.type === "tool_call");
    expect(call).toMatchObject({ name: "bash" });
    const toolRound = llm.requests.filter((r) => r.lastUserText === "make a note").at(-1)!;
    expect(toolRound.toolResults[0]?.content).toContain("noted-by-alice");
    const alice = (await sandboxes()).find((s) => s.key.userId === "alice")!;
    expect(readFileSync(join(gw.dataDir, "volumes", alice.id, "note.txt"), "utf8")).toBe(
      "noted-by-alice\n",
    );
  });

  it("lets an operator run a command in a running sandbox with `lobu sandboxes exec`", async () => {
    const alice = (await sandboxes()).find((s) => s.key.userId === "alice")!;
    const r = await runCli([
      "sandboxes",
      "exec",
      alice.id,
      "--gateway",
      gw.url,
      "--token",
      gw.token,
      "--shell",
      "cat note.txt; id -u",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const [note, uid] = r.stdout.trim().split("\n");
    expect(note).toBe("noted-by-alice");
    expect(Number(uid)).not.toBe(0);
    // After --, a program and its arguments, passed as they are.
    const argv = await runCli([
      "sandboxes",
      "exec",
      alice.id,
      "--gateway",
      gw.url,
      "--token",
      gw.token,
      "--",
      "cat",
      "note.txt",
    ]);
    expect(argv).toMatchObject({ code: 0, stdout: "noted-by-alice\n" });
    const bad = await runCli([
      "sandboxes",
      "exec",
      alice.id,
      "--gateway",
      gw.url,
      "--token",
      gw.token,
      "--timeout",
      "0",
      "--",
      "true",
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--timeout must be/);
  });

  it("gives two users two workers whose volumes cannot see each other", async () => {
    llm.when((req) => req.lastUserText === "snoop", {
      toolCalls: [
        {
          name: "bash",
          input: {
            command: `ls -la /; cat ${join(gw.dataDir, "volumes")}/*/note.txt; ls ..; cat ../*/note.txt; echo done`,
          },
        },
      ],
    });
    llm.when((req) => req.lastUserText === "snoop", { text: "ok" });
    const events = await collectEvents(await send("bob", "snoop"));
    expect(replyText(events)).toBe("ok");
    const result = llm.requests.filter((r) => r.lastUserText === "snoop").at(-1)!
      .toolResults[0]!.content;
    expect(result).toContain("done");
    expect(result).not.toContain("noted-by-alice");
    const list = await sandboxes();
    const a = list.find((s) => s.key.userId === "alice")!;
    const b = list.find((s) => s.key.userId === "bob")!;
    expect(a.id).not.toBe(b.id);
    expect(a.pid).toBeDefined();
    expect(b.pid).toBeDefined();
    expect(a.pid).not.toBe(b.pid);
  });

  it("never exposes the real provider key to a worker (env, command line, volume)", async () => {
    const procs = descendants(gw.child.pid!);
    expect(procs.length).toBeGreaterThan(0);
    // Nowhere in any worker's environment or command line, nor in any volume file.
    expect(leaksOnHost(gw, [REAL_KEY], join(gw.dataDir, "volumes"))).toEqual([]);
    // Yet the provider received the real key: the gateway's relay swapped it in.
    const providerGotRealKey = llm.requests.some((r) => r.apiKey === REAL_KEY);
    expect(providerGotRealKey).toBe(true);
  });

  it("restarts a SIGKILLed worker on the next message and keeps the conversation", async () => {
    const before = (await sandboxes()).find((s) => s.key.userId === "alice")!;
    expect(before.pid).toBeDefined();
    process.kill(before.pid!, "SIGKILL");
    // Wait until the gateway has seen the worker die (however long that takes under load).
    while ((await sandboxes()).find((s) => s.id === before.id)?.state === "running") {
      await new Promise((r) => setTimeout(r, 100));
    }
    const events = await collectEvents(await send("alice", "what did I say first?"));
    expect(replyText(events)).toBe("echo: what did I say first?");
    const req = llm.requests.at(-1)!;
    const transcript = JSON.stringify(req.body.messages);
    expect(transcript).toContain("hello there");
    expect(transcript).toContain("noted-by-alice");
    const after = (await sandboxes()).find((s) => s.id === before.id)!;
    expect(after.pid).not.toBe(before.pid);
  });

  it("loses no acknowledged message when the gateway is killed and restarted", async () => {
    llm.when((req) => req.lastUserText === "survive the crash", { hang: true });
    const res = await gw.api("/api/v1/agents/default/messages", {
      method: "POST",
      body: JSON.stringify({ user: "carol", channel: "dev", text: "survive the crash" }),
    });
    expect(res.status).toBe(202);
    const { messageId } = (await res.json()) as { messageId: string };
    // Wait until the turn is in flight at the provider, then kill the gateway hard.
    await llm.waitForRequests(llm.requests.length + 1, { timeoutMs: 30_000 });
    await gw.kill("SIGKILL");
    llm.when((req) => req.lastUserText === "survive the crash", { text: "I survived." });
    await gw.restart();
    const events = await collectEvents(await gw.api(`/api/v1/messages/${messageId}/events`));
    expect(events.at(-1), JSON.stringify(events)).toMatchObject({
      type: "done",
      text: "I survived.",
    });
    const rec = (await (await gw.api(`/api/v1/messages/${messageId}`)).json()) as {
      status: string;
      reply: string;
    };
    expect(rec).toMatchObject({ status: "done", reply: "I survived." });
    // History has the user message exactly once.
    const conv = (await sandboxes()).find((s) => s.key.userId === "carol")!;
    const hist = (await (await gw.api(`/api/v1/conversations/${conv.id}/messages`)).json()) as {
      messages: { role: string; text: string }[];
    };
    expect(
      hist.messages.filter((m) => m.role === "user" && m.text === "survive the crash"),
    ).toHaveLength(1);
  });
});

describe("bad input", () => {
  it("rejects malformed JSON with 400 and stores nothing", async () => {
    const before = (await (await gw.api("/readyz")).json()) as { queueDepth: number };
    // Audit and usage records given up on (none here): see docs/observability.md.
    expect(before).toMatchObject({ writeFailures: { audit: 0, usage: 0 } });
    const res = await gw.api("/api/v1/agents/default/messages", {
      method: "POST",
      body: "{not json",
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("malformed_json");
    const after = (await (await gw.api("/readyz")).json()) as { queueDepth: number };
    expect(after.queueDepth).toBe(before.queueDepth);
  });

  it("rejects an unknown agent with 404", async () => {
    const res = await gw.api("/api/v1/agents/nope/messages", {
      method: "POST",
      body: JSON.stringify({ user: "alice", text: "hi" }),
    });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("agent_not_found");
  });

  it("rejects an oversize message with 413", async () => {
    const res = await gw.api("/api/v1/agents/default/messages", {
      method: "POST",
      body: JSON.stringify({ user: "alice", text: "x".repeat(40_000) }),
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string; hint?: string } }).error.code).toBe(
      "message_too_large",
    );
  });

  it("delivers a message retried with the same Idempotency-Key once", async () => {
    const send = () =>
      gw.api("/api/v1/agents/default/messages", {
        method: "POST",
        headers: { "idempotency-key": "retry-me-1" },
        body: JSON.stringify({ user: "ivy", text: "only once please" }),
      });
    const first = (await (await send()).json()) as { messageId: string; duplicate: boolean };
    const second = (await (await send()).json()) as { messageId: string; duplicate: boolean };
    expect(first.duplicate).toBe(false);
    expect(second).toMatchObject({ messageId: first.messageId, duplicate: true });
    const events = await collectEvents(await gw.api(`/api/v1/messages/${first.messageId}/events`));
    expect(replyText(events)).toBe("echo: only once please");
    expect(llm.requests.filter((r) => r.lastUserText === "only once please")).toHaveLength(1);
  });

  it("rejects malformed cursors, idempotency keys and dates with 400", async () => {
    const tooLong = await gw.api("/api/v1/agents/default/messages", {
      method: "POST",
      headers: { "idempotency-key": "k".repeat(201) },
      body: JSON.stringify({ user: "ivy", text: "hi" }),
    });
    expect(tooLong.status).toBe(400);
    const sent = (await (
      await gw.api("/api/v1/agents/default/messages", {
        method: "POST",
        body: JSON.stringify({ user: "ivy", text: "cursor test" }),
      })
    ).json()) as { messageId: string };
    const badCursor = await gw.api(`/api/v1/messages/${sent.messageId}/events`, {
      headers: { "last-event-id": "not-a-cursor" },
    });
    expect(badCursor.status).toBe(400);
    expect(((await badCursor.json()) as { error: { code: string } }).error.code).toBe(
      "store_invalid_cursor",
    );
    expect((await gw.api("/api/v1/usage?since=yesterday")).status).toBe(400);
    await collectEvents(await gw.api(`/api/v1/messages/${sent.messageId}/events`));
  });

  it("rejects an agent that names an unknown provider or skill with 400", async () => {
    const res = await gw.api("/api/v1/agents", {
      method: "POST",
      body: JSON.stringify({ id: "typo", provider: "antropic", skills: ["nope"] }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { message: string } };
    expect(body.error.message).toMatch(/provider "antropic" is not defined/);
    expect(body.error.message).toMatch(/skill "nope" is not defined/);
    expect((await gw.api("/api/v1/agents/typo")).status).toBe(404);
  });

  it("rejects requests without a valid token with 401", async () => {
    const res = await fetch(`${gw.url}/api/v1/agents`);
    expect(res.status).toBe(401);
    const res2 = await fetch(`${gw.url}/api/v1/agents`, {
      headers: { authorization: "Bearer lobu_tok_forged" },
    });
    expect(res2.status).toBe(401);
  });

  it("refuses to start on an invalid lobu.toml, naming the file and key", async () => {
    const bad = startGatewayProcess({
      toml: `[agents.default]\nmodle = "x"\n[sandbox]\nmemory_mb = "lots"\n`,
    });
    const err = await bad.then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/lobu\.toml: unknown key "modle" in \[agents\.default\]/);
    expect(err?.message).toMatch(/lobu\.toml: sandbox\.memory_mb: .*expected number/);
  });

  it("refuses to start on a public suffix in an allow list, naming the file, key and the opt-in", async () => {
    const err = await startGatewayProcess({
      toml: `[network]\nallow = ["*.co.uk"]\n[agents.default.secrets]\nT = { secret = "t", hosts = ["*.github.io"] }\n`,
    }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(
      /lobu\.toml: network\.allow: "\*\.co\.uk" would allow every site under co\.uk, a public suffix.*\[network\] allow_public_suffixes/,
    );
    expect(err?.message).toMatch(
      /lobu\.toml: agents\.default\.secrets\.T\.hosts: "\*\.github\.io"/,
    );
  });
});
