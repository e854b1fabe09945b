import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { digest } from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import { readRecord } from "../util/stored-record.ts";
import { errorLine, type NixCli } from "./cli.ts";
import type { Expressions } from "./expressions.ts";
import type { PackageResolver } from "./resolver.ts";
import type { NixSettings } from "./settings.ts";

/** A built package's `info.json` (what makes it ready again after a restart), checked when read back. */
const ReadyInfo = z.object({
  name: z.string(),
  version: z.string(),
  paths: z.array(z.string()),
  closureBytes: z.number().int().nonnegative(),
});
type ReadyInfo = z.infer<typeof ReadyInfo>;

/** Where one package stands on this gateway. */
export type BuildState =
  | { state: "queued" }
  | { state: "building"; detail: string; since: number }
  | {
      state: "ready";
      name: string;
      version: string;
      /** Its outputs (what goes into profiles). */
      paths: string[];
      /** Size of its closure (everything it needs at run time), in bytes. */
      closureBytes: number;
    }
  | { state: "failed"; reason: string; log: string[]; at: number };

export type Settled = Extract<BuildState, { state: "ready" | "failed" }>;

export interface PackageBuildsDeps {
  cli: NixCli;
  expr: Expressions;
  resolver: PackageResolver;
  settings: Pick<NixSettings, "buildTimeoutMs" | "maxClosureBytes" | "root" | "source">;
  log: Logger;
  /** Told whenever a package's state changes. */
  onChange(attr: string, state: BuildState): void;
  /** Builds running at once (default 1: Nix uses every core for one). */
  concurrency?: number;
}

/** A failed package is tried again after this long (a download may have failed). */
const RETRY_FAILED_MS = 15 * 60_000;
const LOG_LINES = 15;

/**
 * Builds packages of the set into the shared Nix store, each once: a package
 * two people want is built (or downloaded) once and shared. Each ready package
 * stays rooted by its result links under `<data dir>/nix/results/<set>/<attr>`
 * (so garbage collection keeps it until no profile wants it) next to its
 * `info.json`, which makes it ready again after a restart without Nix.
 */
export class PackageBuilds {
  readonly #deps: PackageBuildsDeps;
  readonly #states = new Map<string, BuildState>();
  readonly #running = new Map<string, Promise<Settled>>();
  readonly #slots: Array<() => void> = [];
  #active = 0;
  /** Results of this package set (another set's are garbage). */
  readonly resultsDir: string;

  constructor(deps: PackageBuildsDeps) {
    this.#deps = deps;
    this.resultsDir = join(
      deps.settings.root,
      "results",
      digest(JSON.stringify(deps.settings.source), 12),
    );
  }

  /** The package's state on this gateway, if it was ever asked for. */
  state(attr: string): BuildState | undefined {
    return this.#states.get(attr) ?? this.#fromDisk(attr);
  }

  /**
   * Build `attr` unless it is ready (or being built: then join that build).
   * `retry` builds a failed package again at once (a person asked again).
   */
  ensure(attr: string, opts: { retry?: boolean } = {}): Promise<Settled> {
    const running = this.#running.get(attr);
    if (running) return running;
    const current = this.state(attr);
    if (current?.state === "ready") return Promise.resolve(current);
    if (current?.state === "failed" && !opts.retry && Date.now() - current.at < RETRY_FAILED_MS)
      return Promise.resolve(current);
    this.#set(attr, { state: "queued" });
    const build = this.#queued(() => this.#build(attr)).finally(() => this.#running.delete(attr));
    this.#running.set(attr, build);
    return build;
  }

  /** Attributes with results on disk (for garbage collection). */
  built(): string[] {
    try {
      return readdirSync(this.resultsDir).map(decodeURIComponent);
    } catch {
      return [];
    }
  }

  /** Drop a package's results: its store paths are garbage once no profile holds them. */
  forget(attr: string): void {
    if (this.#running.has(attr)) return;
    rmSync(this.#dirOf(attr), { recursive: true, force: true });
    this.#states.delete(attr);
  }

  #dirOf(attr: string): string {
    return join(this.resultsDir, encodeURIComponent(attr));
  }

  #set(attr: string, state: BuildState): void {
    this.#states.set(attr, state);
    this.#deps.onChange(attr, state);
  }

  #fromDisk(attr: string): BuildState | undefined {
    const file = join(this.#dirOf(attr), "info.json");
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      // Not built on this machine yet.
      return undefined;
    }
    const info = readRecord(
      ReadyInfo,
      text,
      { record: "nix build info", key: file },
      this.#deps.log,
      "built again",
    );
    if (!info?.paths.every((p) => existsSync(p))) return undefined;
    const state: BuildState = { state: "ready", ...info };
    this.#states.set(attr, state);
    return state;
  }

  async #queued<T>(job: () => Promise<T>): Promise<T> {
    if (this.#active >= (this.#deps.concurrency ?? 1))
      await new Promise<void>((r) => this.#slots.push(r));
    this.#active++;
    try {
      return await job();
    } finally {
      this.#active--;
      this.#slots.shift()?.();
    }
  }

  async #build(attr: string): Promise<Settled> {
    const { cli, expr, resolver, settings, log } = this.#deps;
    const since = Date.now();
    this.#set(attr, { state: "building", detail: "looking it up in the package set", since });
    const failed = (reason: string, lines: string[] = []): Settled => {
      const state: Settled = {
        state: "failed",
        reason,
        log: lines.slice(-LOG_LINES),
        at: Date.now(),
      };
      this.#set(attr, state);
      log.warn({ package: attr, reason }, "package not provided");
      return state;
    };
    const found = await resolver.resolve(attr);
    if (!found.ok) return failed(found.reason);

    const dir = this.#dirOf(attr);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    this.#set(attr, { state: "building", detail: `preparing ${found.name}`, since });
    const res = await cli.run(
      "nix-build",
      [
        ...resolver.evalArgs(),
        expr.build,
        "--argstr",
        "attr",
        attr,
        "--out-link",
        join(dir, "out"),
        // Nix stops a build that exceeds it, too (the timer below also covers downloads).
        "--option",
        "timeout",
        String(Math.ceil(settings.buildTimeoutMs / 1000)),
      ],
      {
        timeoutMs: settings.buildTimeoutMs,
        onLine: (line) => {
          const detail = progressOf(line);
          if (detail) this.#set(attr, { state: "building", detail, since });
        },
      },
    );
    if (res.timedOut || res.code !== 0) {
      rmSync(dir, { recursive: true, force: true });
      if (res.timedOut)
        return failed(
          `building ${attr} took longer than ${formatDuration(settings.buildTimeoutMs)} (packages.build_timeout)`,
          res.tail,
        );
      return failed(`building ${attr} failed: ${errorLine(res.tail)}`, res.tail);
    }
    const paths = res.stdout.split("\n").filter((l) => l.startsWith("/"));
    const closureBytes = await this.#closureBytes(paths);
    if (closureBytes > settings.maxClosureBytes) {
      rmSync(dir, { recursive: true, force: true });
      return failed(
        `${attr} needs ${formatBytes(closureBytes)} with everything it depends on; this gateway accepts at most ${formatBytes(settings.maxClosureBytes)} (packages.max_closure_mb)`,
      );
    }
    const info: ReadyInfo = { name: found.name, version: found.version, paths, closureBytes };
    writeFileSync(join(dir, "info.json"), JSON.stringify(info));
    const ready: Settled = { state: "ready", ...info };
    this.#set(attr, ready);
    log.info({ package: attr, version: found.version, closureBytes }, "package ready");
    return ready;
  }

  async #closureBytes(paths: string[]): Promise<number> {
    const { cli } = this.#deps;
    const closure = await cli.run("nix-store", ["--query", "--requisites", ...paths]);
    const all = closure.stdout.split("\n").filter((l) => l.startsWith("/"));
    if (all.length === 0) return 0;
    const sizes = await cli.run("nix-store", ["--query", "--size", ...all]);
    return sizes.stdout
      .split("\n")
      .map(Number)
      .filter(Number.isFinite)
      .reduce((a, b) => a + b, 0);
  }
}

/** A progress line for the settings page from one line of Nix's output, if it is one. */
export function progressOf(line: string): string | undefined {
  const building = /^building '[^']*?-([^/']+)\.drv'/.exec(line);
  if (building) return `building ${building[1]}`;
  const copying = /^copying path '[^']*?-([^/']+)' from '([^']+)'/.exec(line);
  if (copying) return `downloading ${copying[1]}`;
  const plan = /^these (\d+) (derivations will be built|paths will be fetched.*)$/.exec(
    line.trim(),
  );
  if (plan) return line.trim().replace(/:$/, "");
  return undefined;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(1)} GB`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  return `${Math.ceil(bytes / 1024)} kB`;
}

function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 1000)}s`;
}
