/** Messages between the main thread and a shell thread (structured-clone safe). */
import type { QuotaLimits } from "./quota-fs.ts";
import type { GlobResult, GrepResult, WalkLimits } from "./search.ts";

/** The volume a job runs on. */
export interface VolumeSpec {
  /** Host directory of the volume (/workspace) and of its /tmp (null: no writable /tmp). */
  volumeDir: string;
  tmpDir: string | null;
  /** Host directory of the sandbox's skill files, shown read-only at /skills (none: no skills). */
  skillsDir?: string;
  quota: QuotaLimits;
}

/** One bash command line. */
export interface ShellJob extends VolumeSpec {
  command: string;
  cwd: string;
  env: Record<string, string>;
  timeoutMs: number;
  maxOutputBytes: number;
}

/** A find (glob) or grep over the volume, with every bound already applied. */
export type SearchJob = VolumeSpec & {
  /** Virtual path searched. */
  root: string;
  timeoutMs: number;
  maxOutputBytes: number;
  walk: WalkLimits;
} & (
    | { kind: "glob"; pattern: string; ignore: string[]; limit: number }
    | {
        kind: "grep";
        isDirectory: boolean;
        pattern: string;
        ignoreCase: boolean;
        literal: boolean;
        glob?: string;
        limit: number;
        context: number;
        maxFileBytes: number;
      }
  );

export type SearchOutcome =
  | ({ kind: "glob" } & GlobResult)
  | ({ kind: "grep" } & GrepResult)
  | { kind: "error"; message: string };

export interface FetchRequest {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  followRedirects?: boolean;
  timeoutMs?: number;
  maxRedirects?: number;
}

export interface FetchResponse {
  status: number;
  statusText: string;
  headers: Record<string, string>;
  body: Uint8Array;
  url: string;
}

export interface JobResult {
  stdout: Uint8Array;
  stderr: Uint8Array;
  exitCode: number;
  timedOut: boolean;
  aborted: boolean;
}

export type ToThread =
  | { t: "run"; job: number; spec: ShellJob }
  | { t: "search"; job: number; spec: SearchJob }
  | { t: "abort"; job: number }
  | { t: "fetched"; job: number; req: number; response?: FetchResponse; error?: string }
  | { t: "locked"; job: number; req: number; bytes: number; entries: number; error?: string };

export type FromThread =
  | { t: "ready"; tid: number | null }
  | { t: "done"; job: number; result: JobResult }
  | { t: "searched"; job: number; result: SearchOutcome }
  | { t: "fetch"; job: number; req: number; request: FetchRequest }
  | { t: "lock"; job: number; req: number }
  | { t: "unlock"; job: number; req: number; bytes: number; entries: number; stale: boolean };
