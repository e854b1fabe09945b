import { appendFileSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
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

/**
 * The file is a snapshot line (a JSON object of turns) followed by one appended line per
 * change (`[messageId, record]`): a turn costs one append, not a rewrite and a rename
 * (which was most of a pool's own time per turn). It is compacted back to one snapshot
 * line, written then renamed so a crash never leaves a torn snapshot, once the
 * appended lines outnumber the turns kept. A torn last line (a crash mid-append) is
 * reported and skipped like any unreadable entry.
 */
export class TurnJournal {
  private readonly file: string;
  private turns: Record<string, TurnRecord>;
  private appended: number;

  constructor(file: string, report: JournalReport = toStderr) {
    this.file = file;
    const { turns, appended } = readJournal(file, report);
    this.turns = turns;
    this.appended = appended;
  }

  get(messageId: string): TurnRecord | undefined {
    return this.turns[messageId];
  }

  set(messageId: string, record: TurnRecord): void {
    this.turns[messageId] = record;
    if (this.appended >= 0 && this.appended < KEEP) {
      appendFileSync(this.file, `${JSON.stringify([messageId, record])}\n`);
      this.appended++;
      return;
    }
    const ids = Object.keys(this.turns);
    if (ids.length > KEEP) {
      const oldest = ids
        .sort((a, b) => this.turns[a]!.at - this.turns[b]!.at)
        .slice(0, ids.length - KEEP);
      for (const id of oldest) delete this.turns[id];
    }
    // Write-then-rename: a crash never leaves a torn snapshot.
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(this.turns)}\n`);
    renameSync(tmp, this.file);
    this.appended = 0;
  }
}

/**
 * The journal's turns. What cannot be read is reported and left out, never
 * taken for a turn: a message whose entry is lost runs again as a new one
 * (the safe side; a wrong "done" would replay a reply that was never given).
 */
function readJournal(
  file: string,
  report: JournalReport,
): { turns: Record<string, TurnRecord>; appended: number } {
  // appended = -1: no usable snapshot line, so the next change writes one.
  const none = { turns: {}, appended: -1 };
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      report(`the turn journal ${file} cannot be read (${(err as Error).message}); starting empty`);
    }
    return none;
  }
  const lost = "its turns are forgotten (a message delivered again runs as new)";
  const [first = "", ...rest] = text.split("\n");
  let doc: unknown;
  try {
    doc = JSON.parse(first);
  } catch {
    report(`the turn journal ${file} is not valid JSON; ${lost}`);
    return none;
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    report(`the turn journal ${file} is not an object of turns; ${lost}`);
    return none;
  }
  const turns: Record<string, TurnRecord> = {};
  const take = (messageId: string, value: unknown) => {
    const parsed = TurnRecord.safeParse(value);
    if (parsed.success) turns[messageId] = parsed.data;
    else {
      const reason = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
      report(`turn journal entry ${messageId} in ${file} is unreadable (${reason}); skipped`);
    }
  };
  for (const [messageId, value] of Object.entries(doc)) take(messageId, value);
  let appended = 0;
  for (const line of rest) {
    if (!line) continue;
    appended++;
    let entry: unknown;
    try {
      entry = JSON.parse(line);
    } catch {
      report(`a turn journal line in ${file} is not valid JSON (cut off by a crash?); skipped`);
      continue;
    }
    if (Array.isArray(entry) && entry.length === 2 && typeof entry[0] === "string")
      take(entry[0], entry[1]);
    else report(`a turn journal line in ${file} is not a turn; skipped`);
  }
  // Without a final newline (a torn append, or the older one-object format) the next
  // append would run on from that line: write a fresh snapshot first.
  return { turns, appended: text.endsWith("\n") ? appended : -1 };
}
