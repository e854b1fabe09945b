import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

/**
 * Per-volume record of turns, so that a message delivered again (the gateway or
 * worker died mid-turn) is neither answered twice nor recorded twice in the
 * session: an unfinished turn is rewound to where it started, a finished one is
 * replayed from here without calling the model.
 */
export interface TurnRecord {
  status: "started" | "done";
  /** Session leaf before the user message was added (null = empty session). */
  leafBefore: string | null;
  text?: string;
  at: number;
}

const KEEP = 200;

export class TurnJournal {
  private readonly file: string;
  private turns: Record<string, TurnRecord>;

  constructor(file: string) {
    this.file = file;
    try {
      this.turns = JSON.parse(readFileSync(file, "utf8")) as Record<string, TurnRecord>;
    } catch {
      this.turns = {};
    }
  }

  get(messageId: string): TurnRecord | undefined {
    return this.turns[messageId];
  }

  set(messageId: string, record: TurnRecord): void {
    this.turns[messageId] = record;
    const ids = Object.keys(this.turns);
    if (ids.length > KEEP) {
      const oldest = ids
        .sort((a, b) => this.turns[a]!.at - this.turns[b]!.at)
        .slice(0, ids.length - KEEP);
      for (const id of oldest) delete this.turns[id];
    }
    // Write-then-rename: a crash never leaves a torn journal.
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.turns));
    renameSync(tmp, this.file);
  }
}
