import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer, type Server } from "node:net";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  REAL_KEY,
  replyOf,
  scriptBash,
  startWorld,
  toolOutputs,
  until,
  type World,
} from "../e2e/sandboxes-kit.ts";

/**
 * The pooled process tier (`driver = "process"`, `process_mode = "pooled"`)
 * through a real `lobu run`: agent loops in the shared pool processes, every
 * bash command in a bubblewrap sandbox of its conversation's own, started by
 * the gateway. Agents act by scripted bash calls (the mock LLM), so each
 * attack below is a real program in a real command sandbox.
 */

/** What alice writes (spelled so that this file, visible read-only as the runtime, does not hold it). */
const NOTE = ["alice", 6 * 7, "note"].join("-");

const hostIp = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && i.family === "IPv4" && !i.internal)?.address;

describe.skipIf(process.platform !== "linux")("pooled process tier", () => {
  let w: World;
  let server: Server;
  let port = 0;
  /** An allowed host's server (api.allowed.test, resolved to 127.0.0.1 in test mode). */
  let upstream: HttpServer;
  let upPort = 0;

  beforeAll(async () => {
    server = createServer((c) => c.end("host listener")).listen(0, "0.0.0.0");
    await new Promise((r) => server.once("listening", r));
    port = (server.address() as { port: number }).port;
    upstream = createHttpServer((req, res) => res.end(`upstream saw ${req.url}`)).listen(
      0,
      "127.0.0.1",
    );
    await new Promise((r) => upstream.once("listening", r));
    upPort = (upstream.address() as { port: number }).port;
    w = await startWorld({
      driver: "process",
      toml: [
        'process_mode = "pooled"',
        "[network]",
        'allow = ["api.allowed.test"]',
        "[agents.default.network]",
        'allow_private_ranges = ["127.0.0.1/32"]',
        "",
      ].join("\n"),
      env: { LOBU_TEST_MODE: "1", LOBU_TEST_RESOLVE: "api.allowed.test=127.0.0.1" },
    });
  }, 120_000);

  afterAll(async () => {
    await w?.close();
    server?.close();
    upstream?.close();
  });

  /** The bash output the model got back for `text` (all calls, in order). */
  const run = async (user: string, text: string, commands: string[]): Promise<string> => {
    scriptBash(w.llm, text, commands);
    const events = await w.chat(user, text);
    expect(replyOf(events)).toBe("ok");
    return toolOutputs(w.llm, text).join("\n");
  };

  it("runs real programs over the conversation's own volume, on a shared pool", async () => {
    const out = await run("alice", "make a note", [
      "echo alice-$((6*7))-note > note.txt && ls && python3 -c 'print(6*7)' && id -u && pwd",
    ]);
    expect(out).toContain("note.txt");
    expect(out).toContain("42");
    expect(out).toContain("/workspace");
    // The uid is not root's, and the file is the real one in the volume.
    expect(out).not.toMatch(/^0$/m);
    const s = await w.sandboxOf("alice");
    expect(s.usage?.pool?.id).toMatch(/^pool-\d+$/);
    const note = join(w.gw.dataDir, "volumes", s.id, "note.txt");
    expect(readFileSync(note, "utf8")).toBe(`${NOTE}\n`);
  });

  it("cannot reach another conversation's volume, the pool's memory or any secret", async () => {
    const alice = await w.sandboxOf("alice");
    const out = await run("bob", "snoop around", [
      [
        "ls -a /workspace/.. /volumes 2>&1",
        `ls /workspace/../${alice.id} 2>&1`,
        "find / -xdev -name note.txt 2>/dev/null",
        // Everywhere but the (read-only) runtime, whose sources this very file is among.
        "grep -rs alice-$((6*7))-note /tmp /run /var /home /root /skills 2>/dev/null | head -3",
        // Only its own processes: the pool (and the gateway) are not in its pid namespace.
        `ls /proc/${alice.pid ?? 1}/mem 2>&1`,
        "echo PIDS=$(ls /proc | grep -cE '^[0-9]+$')",
        "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c KEY",
        "env",
        "id",
      ].join("; "),
    ]);
    expect(out).not.toContain(NOTE);
    expect(out).not.toMatch(/\/note\.txt/);
    expect(out).not.toContain(REAL_KEY);
    expect(out).not.toMatch(/ANTHROPIC/);
    expect(out).toMatch(/No such file or directory/);
    // bash, its ls/grep and the command's own shell: a handful of pids, none of the host's.
    const pids = Number(/PIDS=(\d+)/.exec(out)?.[1] ?? 99);
    expect(pids).toBeLessThan(10);
  });

  it("reaches the network only through its egress socket, as itself", async () => {
    const out = await run("carol", "go online", [
      [
        `python3 -c "import socket; socket.create_connection(('${hostIp ?? "10.255.255.1"}', ${port}), 3)" 2>&1 | tail -1`,
        "ip -o link 2>/dev/null || ls /sys/class/net",
        'test -S "$LOBU_EGRESS_SOCKET" && echo egress-socket-present',
        // (A proxy request: the absolute URL as the request target.)
        'curl -s --max-time 5 --unix-socket "$LOBU_EGRESS_SOCKET" --request-target http://example.com/ http://example.com/; echo',
      ].join("; "),
    ]);
    expect(out).not.toContain("host listener");
    expect(out).toMatch(/Network is unreachable|Connection refused|timed out|Errno/);
    expect(out).not.toMatch(/eth|ens|enp|wlan/);
    expect(out).toContain("egress-socket-present");
    // Through its socket the proxy sees this conversation (not the pool) and applies its policy.
    expect(out).toMatch(/Lobu egress proxy refused/);
    const carol = await w.sandboxOf("carol");
    const denied = await w.audit("egress.denied", carol.id);
    expect(denied.some((r) => r.details?.host === "example.com")).toBe(true);
  });

  it("reaches allowed hosts with plain tools, through the proxy, as itself (like own mode)", async () => {
    const out = await run("erin", "fetch things", [
      [
        // No flags: HTTP_PROXY and the CA bundle come from the sandbox, as in own mode.
        `curl -s --max-time 10 http://api.allowed.test:${upPort}/hello; echo`,
        "curl -s --max-time 10 http://example.com/; echo",
        'echo "proxy=$HTTPS_PROXY ca=$CURL_CA_BUNDLE"',
      ].join("; "),
    ]);
    expect(out).toContain("upstream saw /hello");
    expect(out).toMatch(/Lobu egress proxy refused/);
    expect(out).toMatch(/proxy=http:\/\/127\.0\.0\.1:\d+ ca=\/\S+/);
    const erin = await w.sandboxOf("erin");
    const allowed = await w.audit("egress.allowed", erin.id);
    expect(allowed.some((r) => r.details?.host === "api.allowed.test")).toBe(true);
    const denied = await w.audit("egress.denied", erin.id);
    expect(denied.some((r) => r.details?.host === "example.com")).toBe(true);
  });

  it("passes exit codes through, and nothing listens once its command ended", async () => {
    const out = await run("erin", "fail on purpose", [
      "echo before-exit; exit 7",
      "kill -TERM $$",
      "echo fine",
    ]);
    expect(out).toContain("before-exit");
    expect(out).toContain("exited with code 7");
    // Killed by SIGTERM: 128 + 15, as from a shell.
    expect(out).toContain("exited with code 143");
    expect(out).toContain("fine");
    // The forwarder lived in the command's sandbox: no process of it is left anywhere.
    const left = execFileSync("ps", ["-eo", "args"], { encoding: "utf8" })
      .split("\n")
      .filter((l) => l.includes("command-proxy"));
    expect(left).toEqual([]);
  });

  it("survives a command flooding binary output (its pool's channel stays whole)", async () => {
    const out = await run("dave", "flood", [
      // NULs: escaped as \u0000 in JSON, six bytes each on the control channel.
      "head -c 4000000 /dev/zero; head -c 4000000 /dev/zero >&2",
      "echo still-here",
    ]);
    expect(out).toContain("still-here");
  });

  it("keeps its files across a stop and a cold wake", async () => {
    const alice = await w.sandboxOf("alice");
    const stop = await w.cli(["sandboxes", "stop", alice.id]);
    expect(stop.stdout.trim()).toBe(`stopped ${alice.id}`);
    await until(async () => ((await w.sandboxOf("alice")).state === "stopped" ? true : undefined));
    const out = await run("alice", "read it back", ["cat note.txt && ls /workspace"]);
    expect(out).toContain(NOTE);
  });

  it("holds no command sandbox process while idle", async () => {
    const alice = await w.sandboxOf("alice");
    expect(existsSync(join(w.gw.dataDir, "volumes", alice.id))).toBe(true);
    // Every command's sandbox ended with its command: none of them is left running.
    const left = execFileSync("ps", ["-eo", "args"], { encoding: "utf8" })
      .split("\n")
      .filter((l) => l.includes("lobu-tool") && l.includes("cat note.txt"));
    expect(left).toEqual([]);
  });
});
