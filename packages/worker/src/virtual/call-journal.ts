import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { ToolCallInfo } from "./workspace.ts";

/**
 * The pool's crash journal: which sandbox has which tool call in progress, written to a
 * small file on every change so that it is current when the pool dies (killed for memory
 * by the kernel, V8 out of heap, or ended by the stall watchdog). The gateway reads it
 * then and charges the crash to the sandboxes whose calls were running on the pool's main
 * thread, the only place where a tool call can take the whole pool down; the other
 * sandboxes were only evicted, and their turns are retried without counting against them.
 *
 * The file lives in the volumes root (`.lobu-pool/<pool>.<instance>.json`), the one
 * directory both the pool and the gateway can write; no sandbox sees it.
 */

export interface JournalCall {
  sandboxId: string;
  tool: string;
  where: ToolCallInfo["where"];
  /** Epoch ms the call started. */
  since: number;
}

export interface JournalDoc {
  version: 1;
  /** Set by the gateway for each pool process it starts; a stale file never matches. */
  instance: string;
  at: number;
  calls: JournalCall[];
  /** Written by the stall watchdog before it ends a pool whose main thread froze. */
  stalled?: { at: number; forMs: number };
}

/** Where pool `poolId` of instance `instance` keeps its journal under the volumes root. */
export function journalPath(volumesRoot: string, poolId: string, instance: string): string {
  return `${volumesRoot}/.lobu-pool/${poolId}.${instance}.json`;
}

export class CallJournal {
  readonly file: string | undefined;
  readonly #instance: string;
  readonly #calls = new Map<number, JournalCall>();
  #next = 0;
  #broken = false;

  /** Without a file, calls are only tracked in memory (a pool started by hand, tests). */
  constructor(options: { file?: string; instance: string }) {
    this.file = options.file;
    this.#instance = options.instance;
    if (this.file) {
      mkdirSync(dirname(this.file), { recursive: true });
      this.#write();
    }
  }

  /** Record a call of `sandboxId`; the function returned ends it. */
  begin(sandboxId: string, call: ToolCallInfo): () => void {
    const id = this.#next++;
    this.#calls.set(id, { sandboxId, tool: call.tool, where: call.where, since: Date.now() });
    this.#write();
    return () => {
      if (this.#calls.delete(id)) this.#write();
    };
  }

  snapshot(): JournalDoc {
    return {
      version: 1,
      instance: this.#instance,
      at: Date.now(),
      calls: [...this.#calls.values()],
    };
  }

  /** Synchronous on purpose: the entry must be on disk before the call's work starts. */
  #write(): void {
    if (!this.file || this.#broken) return;
    const tmp = `${this.file}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify(this.snapshot()));
      renameSync(tmp, this.file);
    } catch (error) {
      // Attribution is lost, not the pool: a crash is then charged to no one.
      this.#broken = true;
      process.stderr.write(
        `lobu-worker: the call journal ${this.file} cannot be written (${(error as Error).message}); crashes of this pool will not be attributed\n`,
      );
    }
  }

  /** Remove the file (the pool is stopping normally). */
  close(): void {
    if (this.file) rmSync(this.file, { force: true });
  }
}
