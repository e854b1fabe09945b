import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ShellPool, type VirtualWorkspace } from "../../src/virtual/index.ts";
import { runTool, toolError, workspace } from "./helpers.ts";

/**
 * Many sessions share one pool process: no session's tool input may freeze, crash or
 * monopolise it (issue 9, security 8). Every case here is an attack by one session; the
 * checks are on what the others still get. End to end through a real gateway:
 * packages/gateway/test/e2e/sandboxes-fairness.test.ts.
 */

/** A long CPU-bound command that never waits for anything (runs until stopped). */
// biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, not a template.
const BUSY = "s=$(printf %0200000d 0); for i in $(seq 1 50000); do y=${s//0/ab}; done; echo busy";

const pools: ShellPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

/** Put a file straight into the session's volume (as an earlier command would have). */
function put(ws: VirtualWorkspace, name: string, content: string | Buffer): void {
  mkdirSync(ws.volumeDir, { recursive: true });
  writeFileSync(join(ws.volumeDir, name), content);
}

function shellPool(options: ConstructorParameters<typeof ShellPool>[0]): ShellPool {
  const pool = new ShellPool(options);
  pools.push(pool);
  return pool;
}

describe("one session cannot freeze the pool with its tool input", () => {
  it("answers find and grep globs that backtrack catastrophically in other engines", async () => {
    const ws = await workspace();
    // minimatch needs hours for this name; the linear matcher needs microseconds.
    put(ws, "a".repeat(40), "aaa\n");
    const glob = "*(a|aa)*(a|aa)*(a|aa)c";
    expect((await runTool(ws, "find", { pattern: glob })).text).toBe(
      "No files found matching pattern",
    );
    expect((await runTool(ws, "grep", { pattern: "a", glob })).text).toBe("No matches found");
    expect((await runTool(ws, "find", { pattern: "+(a|aa)" })).text).toBe("a".repeat(40));
  });

  it("bounds grep's output whatever context and limit the model asks for", async () => {
    const ws = await workspace();
    const lines = Array.from({ length: 20_000 }, (_, i) =>
      i % 100 === 0 ? `match ${i}` : `context line ${i}`,
    );
    put(ws, "big.txt", `${lines.join("\n")}\n`);
    const { text } = await runTool(ws, "grep", {
      pattern: "match",
      context: 1_000_000_000,
      limit: 1_000_000_000,
    });
    expect(Buffer.byteLength(text)).toBeLessThan(52 * 1024);
    expect(text).toContain("limit was lowered to 1000");
    expect(text).toContain("context was lowered to 50");
    expect(text).toContain("50.0KB limit reached");
    // Every line once: overlapping context is not repeated.
    const shown = text.split("\n").filter((l) => l.startsWith("big.txt"));
    expect(new Set(shown).size).toBe(shown.length);
  });

  it("prints overlapping context once, matches as matches", async () => {
    const ws = await workspace();
    put(ws, "f.txt", "match 1\nx\nmatch 2\ny\n");
    const { text } = await runTool(ws, "grep", { pattern: "match", context: 1 });
    expect(text.split("\n")).toEqual([
      "f.txt:1: match 1",
      "f.txt-2- x",
      "f.txt:3: match 2",
      "f.txt-4- y",
    ]);
  });

  it("refuses numbers out of range with a tool error that says what is allowed", async () => {
    const ws = await workspace();
    await ws.exec("echo hi > f.txt");
    expect(await toolError(ws, "grep", { pattern: "hi", limit: -1 })).toMatch(
      /grep: limit must be a whole number of at least 1/,
    );
    expect(await toolError(ws, "grep", { pattern: "hi", context: -3 })).toMatch(
      /grep: context must be a whole number of at least 0/,
    );
    expect(await toolError(ws, "find", { pattern: "*", limit: 0 })).toMatch(/find: limit must be/);
    expect(await toolError(ws, "ls", { limit: 0 })).toMatch(/ls: limit must be/);
    expect(await toolError(ws, "read", { path: "f.txt", offset: -5 })).toMatch(
      /read: offset must be/,
    );
    expect(await toolError(ws, "grep", { pattern: "x".repeat(5000) })).toMatch(/limit is 4096/);
  });
});

describe("a watchdog per call", () => {
  it("stops a main-thread call at its deadline and says why", async () => {
    const ws = await workspace({ limits: { maxToolMs: 200 } });
    mkdirSync(ws.volumeDir, { recursive: true });
    // A read that never finishes: a FIFO nobody writes to.
    execFileSync("mkfifo", [join(ws.volumeDir, "pipe")]);
    expect(await toolError(ws, "read", { path: "pipe" })).toBe(
      "The read call was stopped after 0.2 s (the limit for one call). Work on a smaller file or a smaller part of it.",
    );
    // The session's next call is not stuck behind it.
    await ws.exec("echo hi > f.txt");
    expect((await runTool(ws, "read", { path: "f.txt" })).text).toBe("hi\n");
    // Unblock the reader left behind so the test leaves nothing running.
    writeFileSync(join(ws.volumeDir, "pipe"), "");
  });

  it("stops a search at its deadline and says why", async () => {
    const ws = await workspace({ limits: { maxSearchMs: 1 } });
    await ws.exec("for d in $(seq 1 50); do mkdir -p d$d/e; echo x > d$d/e/f; done");
    expect(await toolError(ws, "grep", { pattern: "(x|y)+z" })).toBe(
      "grep was stopped after 0.001 s. Search a smaller directory or use a more specific pattern.",
    );
  });
});

describe("one session cannot crash the pool with a file", () => {
  it("refuses to decode an image whose header claims billions of pixels", async () => {
    const ws = await workspace();
    // A PNG header for 50 000 × 50 000 RGBA pixels: 10 GB once decoded.
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(50_000, 0);
    ihdr.writeUInt32BE(50_000, 4);
    ihdr.set([8, 6, 0, 0, 0], 8);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(13);
    const png = Buffer.concat([
      Buffer.from("\x89PNG\r\n\x1a\n", "latin1"),
      length,
      Buffer.from("IHDR"),
      ihdr,
      Buffer.alloc(4),
    ]);
    put(ws, "bomb.png", png);
    expect(await toolError(ws, "read", { path: "bomb.png" })).toMatch(
      /50000×50000 pixels; the read tool shows images of up to 40 megapixels/,
    );
  });
});

describe("shell threads are shared fairly", () => {
  it("runs a session's simple command while other sessions keep every thread busy", async () => {
    const pool = shellPool({ threads: 2 });
    const opts = { shellPool: pool, limits: { maxCommandMs: 60_000 } };
    const busy = [await workspace(opts), await workspace(opts)];
    const victim = await workspace(opts);
    await victim.exec("true"); // the victim has been here before
    const stop = new AbortController();
    const order: string[] = [];
    const run = (ws: VirtualWorkspace, name: string, command: string) =>
      ws.exec(command, { signal: stop.signal }).then((r) => {
        order.push(name);
        return r;
      });
    const attacks = busy.flatMap((ws, i) => [
      run(ws, `busy${i}a`, BUSY),
      run(ws, `busy${i}b`, BUSY),
    ]);
    // Both busy sessions are running before the victim asks.
    while ((pool.stats().running ?? 0) < 2) await new Promise((r) => setTimeout(r, 20));
    const answer = await run(victim, "victim", "echo hi");
    expect(answer.stdout).toBe("hi\n");
    // The victim was served while every busy command was still running.
    expect(order).toEqual(["victim"]);
    stop.abort();
    await Promise.all(attacks);
  });

  it("fails only the command that blows its thread's memory", async () => {
    const pool = shellPool({ threads: 1, maxThreadHeapMb: 96 });
    const hog = await workspace({ shellPool: pool });
    const other = await workspace({ shellPool: pool });
    await other.exec("true");
    const [blown, fine] = await Promise.all([
      hog.exec('s=$(printf %09000000d 0); a=(); for i in $(seq 1 200); do a+=("$s$i"); done'),
      other.exec("sleep 1; echo ok"),
    ]);
    expect(blown.exitCode).not.toBe(0);
    expect(blown.stderr).toMatch(/ran out of memory/);
    expect(fine).toMatchObject({ exitCode: 0, stdout: "ok\n" });
    // The pool carries on.
    expect((await hog.exec("echo again")).stdout).toBe("again\n");
  });
});
