import { execFileSync } from "node:child_process";
import { closeSync, constants, existsSync, openSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import type { MockTurn, RecordedRequest } from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  gate,
  replyOf,
  scriptBash,
  startWorld,
  toolOutputs,
  until,
  type World,
} from "./sandboxes-kit.ts";

/**
 * A `virtual` pool is a multi-tenant boundary (issue 9, security 8): an attacker sharing a
 * pool process with a victim must not freeze it, crash it on the victim's account, or
 * starve the victim's commands. Everything runs through a real gateway, the real pool
 * worker and the real pi runtime; the attacks are tool calls the (scripted) model makes.
 * The victim's bound is relative to the attacker, never a number of milliseconds: its
 * simple turn completes while the attacker's commands are all still running.
 */

/** A long CPU-bound command that never waits for anything. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, not a template.
const BUSY = "s=$(printf %0200000d 0); for i in $(seq 1 50000); do y=${s//0/ab}; done";

describe("a virtual pool shared with a hostile agent", () => {
  let w: World;
  let victimId: string;
  const volume = (id: string) => join(w.gw.dataDir, "volumes", id);

  /**
   * Wait until someone has `fifo` open for reading, then keep a write end open so that the
   * reader stays blocked in read() (a writer that never writes). Returns the write end.
   */
  const readerOf = async (fifo: string): Promise<number> => {
    for (;;) {
      try {
        return openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENXIO") throw err;
        await new Promise((r) => setTimeout(r, 100)); // no reader yet
      }
    }
  };

  beforeAll(async () => {
    w = await startWorld({
      driver: "virtual",
      toml: `idle_timeout = "10m"\npool_size = 1\ndisk_mb = 32\n`,
    });
    scriptBash(w.llm, "remember this", ["echo precious > notes.txt"]);
    expect(replyOf(await w.chat("victim", "remember this"))).toBe("ok");
    victimId = (await w.sandboxOf("victim")).id;
  });
  afterAll(() => w?.close());

  it("answers a neighbour's simple turn while an attacker's globs, greps and loops run", {
    timeout: 240_000,
  }, async () => {
    scriptBash(w.llm, "prepare", [`touch ${"a".repeat(40)}; seq 1 20000 > big.txt; echo ready`]);
    expect(replyOf(await w.chat("mallory", "prepare"))).toBe("ok");
    const malloryId = (await w.sandboxOf("mallory")).id;
    const poolPid = (await w.sandboxOf("victim")).pid;

    const hold = gate();
    const busy = (n: number) => ({
      name: "bash",
      input: { command: `echo ${n} >> started; ${BUSY}; echo ${n} >> finished`, timeout: 120 },
    });
    w.llm.when(
      (r) => r.lastUserText === "attack",
      {
        toolCalls: [
          { name: "find", input: { pattern: "*(a|aa)*(a|aa)*(a|aa)c" } },
          { name: "grep", input: { pattern: "1", context: 1e9, limit: 1e9 } },
          { name: "grep", input: { pattern: "a", glob: "*(a|aa)*(a|aa)*(a|aa)c" } },
          busy(1),
          busy(2),
          busy(3),
          busy(4),
        ],
      },
      hold.turn,
    );
    const attack = await w.post("mallory", "attack");
    // The attacker's loops hold every shell thread the pool keeps (min(4, CPUs)) before
    // the victim asks.
    const threads = Math.min(4, availableParallelism());
    await until(async () => {
      const started = join(volume(malloryId), "started");
      return existsSync(started) &&
        readFileSync(started, "utf8").trim().split("\n").length >= threads
        ? true
        : undefined;
    });

    scriptBash(w.llm, "quick one", ["echo hi"]);
    expect(replyOf(await w.chat("victim", "quick one"))).toBe("ok");
    expect(toolOutputs(w.llm, "quick one")).toEqual(["hi\n"]);
    // Served while every one of the attacker's commands was still running.
    expect(existsSync(join(volume(malloryId), "finished"))).toBe(false);
    expect((await w.message(attack)).status).toBe("running");

    hold.release();
    await until(async () => ((await w.message(attack)).status === "done" ? true : undefined), 500);
    const [found, grepped, filtered] = toolOutputs(w.llm, "attack");
    expect(found).toBe("No files found matching pattern");
    expect(grepped).toMatch(/limit was lowered to 1000, context was lowered to 50/);
    expect(grepped!.length).toBeLessThan(52 * 1024);
    expect(filtered).toBe("No matches found");
    // Nothing crashed: the pool is the same process, the victim was never charged.
    const victim = await w.sandboxOf("victim");
    expect(victim.pid).toBe(poolPid);
    expect(victim.health).toBeUndefined();
  });

  it("fails a memory hog's command alone: the pool, the hog's sandbox and the victim carry on", {
    timeout: 240_000,
  }, async () => {
    const poolPid = (await w.sandboxOf("victim")).pid;
    scriptBash(w.llm, "hoard", [
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, not a template.
      's=$(printf %09000000d 0); a=(); for i in $(seq 1 400); do a+=("$s$i"); done; echo "kept ${#a[@]}"',
    ]);
    const hoard = await w.post("hoarder", "hoard");
    scriptBash(w.llm, "still fine?", ["echo fine"]);
    expect(replyOf(await w.chat("victim", "still fine?"))).toBe("ok");
    await until(async () => ((await w.message(hoard)).status === "done" ? true : undefined), 500);
    const [out] = toolOutputs(w.llm, "hoard");
    expect(out).toMatch(/ran out of memory|limit exceeded/);
    expect(out).not.toContain("kept 400");
    // A tool error, not a crash: nobody was charged, the pool is the same process.
    const hoarder = await w.sandboxOf("hoarder");
    expect(hoarder.pid).toBe(poolPid);
    expect(hoarder.health).toBeUndefined();
    expect((await w.sandboxOf("victim")).health).toBeUndefined();
  });

  it("charges a pool crash to the sandbox whose call held the pool's main thread; neighbours are retried and never repaired", {
    timeout: 240_000,
  }, async () => {
    scriptBash(w.llm, "set up", ["echo ready"]);
    expect(replyOf(await w.chat("eve", "set up"))).toBe("ok");
    const eveId = (await w.sandboxOf("eve")).id;
    // A read that never finishes (a FIFO nobody writes to) keeps eve's call on the pool's
    // main thread for as long as the test wants; killing the pool then stands for
    // whatever a main-thread call could do to it (the kernel's OOM killer, V8's heap).
    execFileSync("mkfifo", ["-m", "666", join(volume(eveId), "pipe")]);

    const answer =
      (toolCall: { name: string; input: Record<string, unknown> }): MockTurn =>
      (req: RecordedRequest) =>
        req.toolResults.length > 0 ? { text: "ok" } : { toolCalls: [toolCall] };
    const script = (text: string, turn: MockTurn) =>
      w.llm.when((r) => r.lastUserText === text, ...Array.from({ length: 8 }, () => turn));
    script("read the pipe", answer({ name: "read", input: { path: "pipe" } }));
    script(
      "slow job",
      answer({
        name: "bash",
        input: { command: "echo attempt >> attempts.log; sleep 4; echo slow" },
      }),
    );

    const slow = await w.post("victim", "slow job");
    const reading = await w.post("eve", "read the pipe");
    const pipe = join(volume(eveId), "pipe");
    const writers: number[] = [];
    for (let round = 0; round < 2; round++) {
      // Eve's read is waiting on the pipe...
      writers.push(await readerOf(pipe));
      // ...and the victim's command has started on a shell thread.
      const log = join(volume(victimId), "attempts.log");
      await until(async () =>
        existsSync(log) && readFileSync(log, "utf8").split("\n").length > round + 1
          ? true
          : undefined,
      );
      const pid = (await w.sandboxOf("victim")).pid!;
      process.kill(pid, "SIGKILL");
      // Back on a new pool process.
      await until(async () => {
        const now = (await w.sandboxOf("victim")).pid;
        return now !== undefined && now !== pid ? true : undefined;
      });
    }
    for (const fd of writers) closeSync(fd);

    await until(async () => ((await w.message(slow)).status === "done" ? true : undefined), 500);
    await until(async () => ((await w.message(reading)).status === "done" ? true : undefined), 500);
    const victim = await w.sandboxOf("victim");
    // Evicted twice, retried, answered; never charged, never repaired.
    expect(victim.lastRepair).toBeUndefined();
    expect(victim.health).toBeUndefined();
    expect(readFileSync(join(volume(victimId), "notes.txt"), "utf8")).toBe("precious\n");
    expect(readFileSync(join(volume(victimId), "attempts.log"), "utf8")).toBe(
      "attempt\nattempt\nattempt\n",
    );
    // Eve was charged twice in a row: her workspace was repaired before her third try.
    const eve = await w.sandboxOf("eve");
    expect(eve.lastRepair?.reason).toMatch(/crashed 2 times/);
    const repairs = await w.audit("sandbox.repaired");
    expect(repairs.map((r) => r.sandboxId)).toEqual([eveId]);
  });
});
