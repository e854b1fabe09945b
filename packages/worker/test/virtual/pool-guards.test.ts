import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CallJournal, journalPath } from "../../src/virtual/call-journal.ts";
import { tempDir } from "./helpers.ts";

/**
 * The pool's call journal and stall watchdog (pool-guards.ts), as a pool process runs
 * them: the journal names the calls in progress, and a main thread that stops answering
 * gets the process ended with the journal marked, so the gateway can charge the crash.
 */

const GUARDS = new URL("../../src/virtual/pool-guards.ts", import.meta.url).pathname;

describe("the pool's call journal", () => {
  it("records each call while it runs and forgets it when it ends", async () => {
    const root = await tempDir();
    const file = journalPath(root, "pool-0", "i1");
    const journal = new CallJournal({ file, instance: "i1" });
    const read = () => JSON.parse(readFileSync(file, "utf8"));
    const end = journal.begin("sb-a", { tool: "read", where: "main" });
    journal.begin("sb-b", { tool: "bash", where: "thread" });
    expect(read()).toMatchObject({
      version: 1,
      instance: "i1",
      calls: [
        { sandboxId: "sb-a", tool: "read", where: "main" },
        { sandboxId: "sb-b", tool: "bash", where: "thread" },
      ],
    });
    end();
    expect(read().calls.map((c: { sandboxId: string }) => c.sandboxId)).toEqual(["sb-b"]);
    journal.close();
    expect(existsSync(file)).toBe(false);
  });
});

describe("the pool's stall watchdog", () => {
  it("ends a pool whose main thread stops answering, and marks the journal", async () => {
    const root = await tempDir();
    const script = join(root, "frozen-pool.ts");
    writeFileSync(
      script,
      `import { startPoolGuards } from ${JSON.stringify(GUARDS)};
const guards = startPoolGuards(
  { LOBU_SANDBOX_ID: "pool-0", LOBU_POOL_INSTANCE: "i2", LOBU_POOL_STALL_MS: "500" },
  ${JSON.stringify(root)},
);
guards.onCall("sb-frozen")({ tool: "edit", where: "main" });
guards.onCall("sb-other")({ tool: "bash", where: "thread" });
setTimeout(() => {
  for (;;) {} // a main thread that never answers again
}, 300);
`,
    );
    const child = spawn(process.execPath, [script], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) =>
      child.on("exit", (c, s) => resolve([c, s])),
    );
    expect([code, signal]).toEqual([null, "SIGKILL"]);
    expect(stderr).toMatch(/main thread did not respond for \d+ s; ending the pool/);
    const doc = JSON.parse(readFileSync(journalPath(root, "pool-0", "i2"), "utf8"));
    expect(doc.stalled.forMs).toBeGreaterThanOrEqual(500);
    expect(doc.calls).toMatchObject([
      { sandboxId: "sb-frozen", tool: "edit", where: "main" },
      { sandboxId: "sb-other", tool: "bash", where: "thread" },
    ]);
  });
});
