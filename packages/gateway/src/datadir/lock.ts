import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { LobuError } from "@lobu/core";
import { startTicks } from "../sandbox/proc.ts";

/**
 * One gateway per data dir. Two gateways sharing one would both lease the same
 * messages, start the same sandboxes and mount the same volumes.
 *
 * The lock is an OS file lock that dies with its process, so a crashed holder
 * (SIGKILL, power loss) never leaves a stale lock behind and a reused pid can
 * never look like the holder. Node has no flock(), so the lock is SQLite's
 * own: `<data dir>/lobu.lock` is an empty SQLite database that nobody writes;
 * holding a transaction open on it holds a POSIX record lock (fcntl) on the
 * file. SQLite also refuses a second lock from another connection in the same
 * process, which a plain fcntl lock would not.
 *
 * - exclusive (`lobu run`, an embedded gateway, `lobu master-key rotate`):
 *   `BEGIN EXCLUSIVE`; fails at once while anyone else holds the lock.
 * - shared (`lobu doctor`): a read transaction; many may hold it together, and
 *   it keeps a gateway from starting (and sweeping the data dir) meanwhile.
 *
 * Who holds the exclusive lock is written next to it (`lobu.lock.json`) for
 * error messages only; that file is believed only while its process lives.
 *
 * Caveat of POSIX locks: closing *any* descriptor of `lobu.lock` in the holding
 * process drops its lock, so nothing else in the gateway may open that file.
 */

export const LOCK_FILE = "lobu.lock";
export const HOLDER_FILE = "lobu.lock.json";

export interface LockHolder {
  pid: number;
  host: string;
  /** What holds it: "gateway", "master-key rotation". */
  what: string;
  /** When it took the lock (ms since epoch). */
  since: number;
  /** The gateway's URL, once it listens. */
  url?: string;
  /** Start time of the process (Linux clock ticks since boot), to tell a reused pid apart. */
  startTicks?: number;
}

export interface DataDirLock {
  readonly dataDir: string;
  readonly mode: "exclusive" | "shared";
  /** Add facts to the holder record (e.g. the URL once listening). */
  describe(more: Partial<Pick<LockHolder, "url">>): void;
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The live holder of the data dir's exclusive lock, if it says who it is. */
export function lockHolder(dataDir: string): LockHolder | undefined {
  let holder: LockHolder;
  try {
    holder = JSON.parse(readFileSync(join(dataDir, HOLDER_FILE), "utf8")) as LockHolder;
  } catch {
    return undefined;
  }
  if (typeof holder.pid !== "number" || holder.host !== hostname()) return undefined;
  if (!alive(holder.pid)) return undefined;
  // A live pid with another start time is a different process that reuses the number.
  if (holder.startTicks !== undefined && startTicks(holder.pid) !== holder.startTicks)
    return undefined;
  return holder;
}

/** "a gateway (pid 42, since 10:01:02, http://127.0.0.1:8080)" */
export function describeHolder(holder: LockHolder): string {
  const since = new Date(holder.since).toTimeString().slice(0, 8);
  const self = holder.pid === process.pid ? ", this very process" : "";
  return `${holder.what === "gateway" ? "a gateway" : holder.what} (pid ${holder.pid}${self}, since ${since}${holder.url ? `, ${holder.url}` : ""})`;
}

function open(dataDir: string): DatabaseSync {
  // No busy timeout: a lock that is held is reported at once, not waited for.
  return new DatabaseSync(join(dataDir, LOCK_FILE), { timeout: 0 });
}

const isBusy = (err: unknown) => /database is locked|SQLITE_BUSY/i.test(String(err));

/**
 * Take the data dir for this process alone. Throws `data_dir_locked`, naming the
 * holder, while another gateway (or rotation, or `lobu doctor`) uses it.
 */
export function lockDataDir(dataDir: string, what = "gateway"): DataDirLock {
  const db = open(dataDir);
  try {
    db.exec("BEGIN EXCLUSIVE");
  } catch (err) {
    db.close();
    if (!isBusy(err)) throw err;
    const holder = lockHolder(dataDir);
    throw new LobuError(
      "data_dir_locked",
      `the data dir ${dataDir} is in use by ${holder ? describeHolder(holder) : "another Lobu process (`lobu doctor`, or a gateway that is still starting)"}`,
      {
        status: 409,
        hint: holder
          ? `Stop it first${holder.pid === process.pid ? "" : ` (kill ${holder.pid})`}, or give this one a data dir of its own: --data-dir <dir> (and another --port). Two gateways on one data dir would corrupt each other's state.`
          : "Wait a moment and try again. Every gateway needs a data dir of its own (--data-dir).",
        details: holder ? { pid: holder.pid, what: holder.what } : undefined,
      },
    );
  }
  const record: LockHolder = {
    pid: process.pid,
    host: hostname(),
    what,
    since: Date.now(),
    startTicks: startTicks("self"),
  };
  const holderFile = join(dataDir, HOLDER_FILE);
  const write = () => writeFileSync(holderFile, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  write();
  let held = true;
  return {
    dataDir,
    mode: "exclusive",
    describe(more) {
      if (!held) return;
      Object.assign(record, more);
      write();
    },
    release() {
      if (!held) return;
      held = false;
      // Still ours while the lock is held: remove it before letting go.
      rmSync(holderFile, { force: true });
      db.close();
    },
  };
}

/**
 * Share the data dir with other readers (`lobu doctor`). Undefined when a
 * gateway holds it exclusively: then it is that gateway's, and readers must
 * not change anything in it.
 */
export function lockDataDirShared(dataDir: string): DataDirLock | undefined {
  const db = open(dataDir);
  try {
    db.exec("BEGIN");
    // A read takes SQLite's SHARED lock, held until the transaction ends.
    db.prepare("SELECT count(*) FROM sqlite_master").get();
  } catch (err) {
    db.close();
    if (isBusy(err)) return undefined;
    throw err;
  }
  let held = true;
  return {
    dataDir,
    mode: "shared",
    describe() {},
    release() {
      if (!held) return;
      held = false;
      db.close();
    },
  };
}
