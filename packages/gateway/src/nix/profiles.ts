import { mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { digest } from "@lobu/core";
import { z } from "zod";
import { type RecordLog, readRecord } from "../util/stored-record.ts";
import { errorLine, type NixCli } from "./cli.ts";

/** Whose profile it is: one per agent and person. */
export interface ProfileOwner {
  agentId: string;
  userKey: string;
}

/** What a profile holds now (`<id>.json`), checked when read back. */
const ProfileRecord = z.object({
  agentId: z.string(),
  userKey: z.string(),
  /** Package name → its store paths, as installed in the current generation. */
  packages: z.record(z.string(), z.array(z.string())),
  /** The generation's store path (a user environment: bin/, share/, ...). */
  storePath: z.string(),
  updatedAt: z.number(),
});
export type ProfileRecord = z.infer<typeof ProfileRecord>;

/**
 * A profile's id: a digest, so the profile's file names (which Nix's indirect
 * GC roots point at, in the state directory) never name the person.
 */
export function profileId(owner: ProfileOwner): string {
  return `p${digest(`${owner.agentId}\n${owner.userKey}`, 24)}`.toLowerCase();
}

/**
 * Nix profiles, one per (agent, person), under `<data dir>/nix/profiles`: each
 * is `<id>` → `<id>-<n>-link` → a user environment in the store (Nix makes every
 * generation an indirect GC root), plus `<id>.json` saying whose it is and what
 * it holds. A person's profile holds the agent's skills' packages and their own.
 */
export class Profiles {
  readonly dir: string;
  readonly #cli: NixCli;
  readonly #log: RecordLog;

  constructor(cli: NixCli, root: string, log: RecordLog) {
    this.#cli = cli;
    this.#log = log;
    this.dir = join(root, "profiles");
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  get(id: string): ProfileRecord | undefined {
    const file = join(this.dir, `${id}.json`);
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      // No profile yet.
      return undefined;
    }
    // An unreadable record counts as no profile: the next switch writes a sound one.
    return readRecord(
      ProfileRecord,
      text,
      { record: "nix profile", key: file },
      this.#log,
      "made again",
    );
  }

  ids(): string[] {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith(".json"))
      .map((f) => f.slice(0, -".json".length));
  }

  /**
   * Make the profile hold exactly `packages` (a new generation, unless it holds
   * them already). Returns the record of the current generation.
   */
  async switchTo(owner: ProfileOwner, packages: Record<string, string[]>): Promise<ProfileRecord> {
    const id = profileId(owner);
    const current = this.get(id);
    if (current && sameContents(current.packages, packages)) return current;
    const paths = [...new Set(Object.values(packages).flat())].sort();
    const profile = join(this.dir, id);
    const res = await this.#cli.run("nix-env", [
      "--profile",
      profile,
      "--install",
      "--remove-all",
      ...paths,
    ]);
    if (res.code !== 0) throw new Error(`could not update the profile: ${errorLine(res.tail)}`);
    const record: ProfileRecord = {
      ...owner,
      packages,
      storePath: realpathSync(profile),
      updatedAt: Date.now(),
    };
    writeFileSync(join(this.dir, `${id}.json`), JSON.stringify(record));
    return record;
  }

  /** Drop older generations (their GC roots): only the current one stays alive. */
  async pruneGenerations(id: string): Promise<void> {
    await this.#cli.run("nix-env", [
      "--profile",
      join(this.dir, id),
      "--delete-generations",
      "old",
    ]);
  }

  /** Delete the profile and all its generations: what only it held becomes garbage. */
  remove(id: string): void {
    for (const f of readdirSync(this.dir)) {
      if (f === id || f === `${id}.json` || (f.startsWith(`${id}-`) && f.endsWith("-link")))
        rmSync(join(this.dir, f), { force: true });
    }
  }
}

function sameContents(a: Record<string, string[]>, b: Record<string, string[]>): boolean {
  const key = (r: Record<string, string[]>) =>
    JSON.stringify(
      Object.entries(r)
        .map(([k, v]) => [k, [...v].sort()])
        .sort(),
    );
  return key(a) === key(b);
}
