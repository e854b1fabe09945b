import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { z } from "zod";

/**
 * Per-volume record of turns, so that a message delivered again (the gateway or
 * worker died mid-turn) is neither answered twice nor recorded twice in the
 * session: an unfinished turn is rewound to where it started, a finished one is
 * replayed from here without calling the model.
 */
export const TurnRecord = z.object({
  status: z.enum(["started", "done"]),
  /** Session leaf before the user message was added (null = empty session). */
  leafBefore: z.string().nullable(),
  text: z.string().optional(),
  at: z.number(),
});
export type TurnRecord = z.infer<typeof TurnRecord>;

const KEEP = 200;

/** Where the journal reports what it could not read (the worker's stderr by default). */
export type JournalReport = (line: string) => void;

const toStderr: JournalReport = (line) => process.stderr.write(`lobu-worker: ${line}\n`);

export class TurnJournal {
  private readonly file: string;
  private turns: Record<string, TurnRecord>;

  constructor(file: string, report: JournalReport = toStderr) {
    this.file = file;
    this.turns = readJournal(file, report);
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

/**
 * The journal's turns. What cannot be read is reported and left out, never
 * taken for a turn: a message whose entry is lost runs again as a new one
 * (the safe side; a wrong "done" would replay a reply that was never given).
 */
function readJournal(file: string, report: JournalReport): Record<string, TurnRecord> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      report(`the turn journal ${file} cannot be read (${(err as Error).message}); starting empty`);
    }
    return {};
  }
  const lost = "its turns are forgotten (a message delivered again runs as new)";
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    report(`the turn journal ${file} is not valid JSON; ${lost}`);
    return {};
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    report(`the turn journal ${file} is not an object of turns; ${lost}`);
    return {};
  }
  const turns: Record<string, TurnRecord> = {};
  for (const [messageId, value] of Object.entries(doc)) {
    const parsed = TurnRecord.safeParse(value);
    if (parsed.success) turns[messageId] = parsed.data;
    else {
      const reason = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
      report(`turn journal entry ${messageId} in ${file} is unreadable (${reason}); skipped`);
    }
  }
  return turns;
}
