/** Messages between the main thread and a shell thread (structured-clone safe). */
import type { QuotaLimits } from "./quota-fs.ts";

export interface ShellJob {
  /** Host directory of the volume (/workspace) and of its /tmp (null: no writable /tmp). */
  volumeDir: string;
  tmpDir: string | null;
  command: string;
  cwd: string;
  env: Record<string, string>;
  timeoutMs: number;
  maxOutputBytes: number;
  quota: QuotaLimits;
}

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
  | { t: "abort"; job: number }
  | { t: "fetched"; job: number; req: number; response?: FetchResponse; error?: string }
  | { t: "locked"; job: number; req: number; bytes: number; entries: number; error?: string };

export type FromThread =
  | { t: "done"; job: number; result: JobResult }
  | { t: "fetch"; job: number; req: number; request: FetchRequest }
  | { t: "lock"; job: number; req: number }
  | { t: "unlock"; job: number; req: number; bytes: number; entries: number; stale: boolean };
