import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { open, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";

/**
 * The gateway's side of a virtual pool's call journal (the pool writes it, see
 * packages/worker/src/virtual/call-journal.ts): when a pool process dies, which of its
 * sandboxes had a tool call running on the pool's main thread. Those are charged with the
 * crash; every other sandbox of the pool was only evicted.
 *
 * The pool is shared by many sandboxes and runs no agent code of its own (agents run in
 * the virtual shell), so what it writes here is its own record; still, it is read with a
 * size limit and checked like any input.
 */

const JOURNAL_DIR = ".lobu-pool";
/** Larger than any real journal (a few hundred calls in flight). */
const MAX_JOURNAL_BYTES = 256 * 1024;

const JournalDoc = z.object({
  version: z.literal(1),
  instance: z.string(),
  at: z.number(),
  calls: z
    .array(
      z.object({
        sandboxId: z.string().max(200),
        tool: z.string().max(100),
        where: z.enum(["main", "thread"]),
        since: z.number(),
      }),
    )
    .max(10_000),
  stalled: z.object({ at: z.number(), forMs: z.number() }).optional(),
});

/** Must name the same file as the worker's `journalPath`. */
export function poolJournalPath(volumesRoot: string, poolId: string, instance: string): string {
  return join(volumesRoot, JOURNAL_DIR, `${poolId}.${instance}.json`);
}

export interface PoolBlame {
  /** Sandboxes charged with the pool's death. */
  sandboxes: Set<string>;
  /** The pool was ended by its stall watchdog (its main thread froze). */
  stalled: boolean;
}

/**
 * Who is charged with the death of pool process `instance`: the sandboxes whose calls ran
 * on its main thread. No journal (or one of another process) charges no one.
 */
export async function blameFromJournal(file: string, instance: string): Promise<PoolBlame> {
  const none: PoolBlame = { sandboxes: new Set(), stalled: false };
  let text: string;
  try {
    const handle = await open(file, "r");
    try {
      const buffer = Buffer.alloc(MAX_JOURNAL_BYTES + 1);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      if (bytesRead > MAX_JOURNAL_BYTES) throw new Error(`${file} is larger than expected`);
      text = buffer.subarray(0, bytesRead).toString("utf8");
    } finally {
      await handle.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return none;
    throw err;
  }
  const doc = JournalDoc.parse(JSON.parse(text));
  if (doc.instance !== instance) return none;
  const main = doc.calls.filter((c) => c.where === "main").map((c) => c.sandboxId);
  return { sandboxes: new Set(main), stalled: doc.stalled !== undefined };
}

/**
 * This gateway's journal scope: a random name kept in its own state dir, the same across
 * its restarts and different from every other gateway's, even on a volumes directory they
 * share. Pool instances are named `<scope>-<uuid>`, so a gateway clears only its own.
 */
export function poolJournalScope(stateDir: string): string {
  const file = join(stateDir, "pool-journal-scope");
  try {
    const scope = readFileSync(file, "utf8").trim();
    if (SCOPE.test(scope)) return scope;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const scope = randomBytes(6).toString("hex");
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileSync(file, `${scope}\n`, { mode: 0o600 });
  return scope;
}

const SCOPE = /^[0-9a-f]{12}$/;

/** A new pool process's instance name, in this gateway's scope. */
export function poolInstance(scope: string): string {
  return `${scope}-${randomUUID()}`;
}

/**
 * Remove journals left by pools of an earlier run of this gateway (its scope): other
 * gateways' on a shared volumes directory are theirs, alive or not.
 */
export async function clearPoolJournals(volumesRoot: string, scope: string): Promise<void> {
  const dir = join(volumesRoot, JOURNAL_DIR);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  const mine = names.filter((name) => name.includes(`.${scope}-`) && name.endsWith(".json"));
  await Promise.all(mine.map((name) => rm(join(dir, name), { force: true })));
}
