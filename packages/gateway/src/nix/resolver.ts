import { distance } from "fastest-levenshtein";
import { errorLine, type NixCli } from "./cli.ts";
import type { Expressions } from "./expressions.ts";

/** What the package set says about one name. */
export type Resolution =
  | { ok: true; name: string; version: string }
  | { ok: false; reason: string };

/** Evaluations fetch the set first (a nixpkgs tarball is tens of MB). */
const EVAL_TIMEOUT_MS = 10 * 60_000;
/** Attribute names of a set are read again after this long (the set may move: channels). */
const NAMES_TTL_MS = 60 * 60_000;

/**
 * Resolves package names against the package set: whether an attribute exists
 * and is a package, its name and version, and when it does not, the closest
 * name the set has ("did you mean ffmpeg?").
 */
export class PackageResolver {
  readonly #cli: NixCli;
  readonly #expr: Expressions;
  readonly #names = new Map<string, { at: number; names: Promise<string[]> }>();
  readonly #now: () => number;

  constructor(cli: NixCli, expr: Expressions, now: () => number = Date.now) {
    this.#cli = cli;
    this.#expr = expr;
    this.#now = now;
  }

  /** Evaluation flags (the flakes feature for a flake set). */
  evalArgs(): string[] {
    return this.#expr.flake
      ? ["--option", "extra-experimental-features", "nix-command flakes"]
      : [];
  }

  async resolve(attr: string): Promise<Resolution> {
    const res = await this.#cli.run(
      "nix-instantiate",
      [
        ...this.evalArgs(),
        "--eval",
        "--json",
        "--strict",
        this.#expr.info,
        "--argstr",
        "attr",
        attr,
      ],
      { timeoutMs: EVAL_TIMEOUT_MS },
    );
    if (res.code !== 0)
      return {
        ok: false,
        reason: `the package set could not be evaluated: ${res.timedOut ? "it took too long" : errorLine(res.tail)}`,
      };
    const info = JSON.parse(res.stdout) as { exists: boolean; name?: string; version?: string };
    if (info.exists) return { ok: true, name: info.name ?? attr, version: info.version ?? "" };
    const suggestion = await this.suggest(attr);
    return {
      ok: false,
      reason: `no package named ${attr} in the package set${suggestion ? `; did you mean ${suggestion}?` : ""}`,
    };
  }

  /** The name in the set closest to `attr` (same parent set), if one is close enough. */
  async suggest(attr: string): Promise<string | undefined> {
    const dot = attr.lastIndexOf(".");
    const prefix = dot === -1 ? "" : attr.slice(0, dot);
    const leaf = attr.slice(dot + 1);
    const names = await this.namesAt(prefix).catch(() => []);
    const best = closest(leaf, names);
    return best === undefined ? undefined : prefix ? `${prefix}.${best}` : best;
  }

  private namesAt(prefix: string): Promise<string[]> {
    const cached = this.#names.get(prefix);
    if (cached && this.#now() - cached.at < NAMES_TTL_MS) return cached.names;
    const names = this.#cli
      .run(
        "nix-instantiate",
        [
          ...this.evalArgs(),
          "--eval",
          "--json",
          "--strict",
          this.#expr.names,
          "--argstr",
          "prefix",
          prefix,
        ],
        { timeoutMs: EVAL_TIMEOUT_MS },
      )
      .then((res) => {
        if (res.code !== 0) throw new Error(errorLine(res.tail));
        return JSON.parse(res.stdout) as string[];
      });
    names.catch(() => this.#names.delete(prefix));
    this.#names.set(prefix, { at: this.#now(), names });
    return names;
  }
}

/**
 * The candidate closest to `name`: the same name in other letter case, or the
 * nearest by edit distance within a third of its length (at least 2 edits).
 */
export function closest(name: string, candidates: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  const sameCase = candidates.find((c) => c.toLowerCase() === lower);
  if (sameCase) return sameCase;
  const limit = Math.max(2, Math.floor(name.length / 3));
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const c of candidates) {
    if (Math.abs(c.length - name.length) > limit) continue;
    const d = distance(lower, c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}
