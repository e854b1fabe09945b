import { readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { settled } from "@lobu/core/best-effort";
import type { Logger } from "pino";
import { policyRefusal } from "../domain/package-policy.ts";
import { type BuildState, PackageBuilds, type Settled } from "./builds.ts";
import { NixCli } from "./cli.ts";
import { writeExpressions } from "./expressions.ts";
import { SandboxLinks } from "./links.ts";
import { type ProfileOwner, Profiles, profileId } from "./profiles.ts";
import { PackageResolver } from "./resolver.ts";
import type { NixSettings } from "./settings.ts";

/** A package name as people and skills may give it (the settings page checks the same). */
const ATTR = /^[A-Za-z0-9_][A-Za-z0-9._+-]{0,99}$/;

/** One wanted package of an owner and where it stands. */
export interface PackageStatus {
  attr: string;
  state: BuildState;
}

/** An owner's packages: each one's state, and the profile their sandboxes see. */
export interface OwnerPackages {
  packages: PackageStatus[];
  /** The current profile generation (a store path), when it holds anything. */
  storePath?: string;
}

export interface GcReport {
  profilesRemoved: number;
  pathsDeleted: number;
  bytesFreed: number;
}

/** Where sandboxes see packages: the store (read-only, same path) and their link directories. */
export interface PackageMounts {
  storeDir: string;
  /** `<linksRoot>/<sandbox id>` is shown at SANDBOX_PACKAGES. */
  linksRoot: string;
}

/**
 * Nix packages for agents: builds what owners (an agent and a person) want
 * into the shared store, keeps one profile per owner, and points each
 * sandbox at the profile of the person whose turn runs there. Nothing here
 * blocks: `sync` starts work and says where it stands; `settled` waits for it.
 */
export class NixPackages {
  readonly settings: NixSettings;
  readonly version: string;
  readonly #cli: NixCli;
  readonly #log: Logger;
  readonly #resolver: PackageResolver;
  readonly #builds: PackageBuilds;
  readonly #profiles: Profiles;
  readonly #links: SandboxLinks;
  /** What each owner wanted when last asked (profiles follow it as builds finish). */
  readonly #wants = new Map<string, { owner: ProfileOwner; wanted: string[] }>();
  /** Sandbox → the owner whose profile it shows. */
  readonly #attached = new Map<string, string>();
  /** Profile changes and garbage collection, one at a time. */
  #serial: Promise<unknown> = Promise.resolve();
  #pendingProfiles = new Map<string, Promise<OwnerPackages>>();

  private constructor(settings: NixSettings, cli: NixCli, version: string, log: Logger) {
    this.settings = settings;
    this.version = version;
    this.#cli = cli;
    this.#log = log;
    const expr = writeExpressions(join(settings.root, "expr"), settings.source);
    this.#resolver = new PackageResolver(cli, expr);
    this.#profiles = new Profiles(cli, settings.root, log);
    this.#links = new SandboxLinks(settings.root);
    this.#builds = new PackageBuilds({
      cli,
      expr,
      resolver: this.#resolver,
      settings,
      log,
      onChange: (attr, state) => this.#onBuild(attr, state),
    });
  }

  /** Nix for `settings`, or why there is none (not installed). */
  static async open(
    settings: NixSettings,
    log: Logger,
    env: NodeJS.ProcessEnv = process.env,
  ): Promise<NixPackages | { unavailable: string }> {
    const cli = new NixCli(settings, env);
    const version = await cli.version();
    if (!version) return { unavailable: "Nix is not installed on the gateway's host" };
    return new NixPackages(settings, cli, version, log);
  }

  mounts(): PackageMounts {
    return { storeDir: this.settings.storeDir, linksRoot: this.#links.dir };
  }

  /** Why `attr` cannot be provided (not a name, the operator's lists, not in the set), or undefined. */
  async refusal(attr: string): Promise<string | undefined> {
    const local = this.#localRefusal(attr);
    if (local) return local;
    const known = this.#builds.state(attr);
    if (known?.state === "ready" || known?.state === "building") return undefined;
    const found = await this.#resolver.resolve(attr);
    return found.ok ? undefined : found.reason;
  }

  #localRefusal(attr: string): string | undefined {
    if (!ATTR.test(attr)) return `"${attr}" is not a Nix package name`;
    return policyRefusal(attr, this.settings);
  }

  /** Where the owner's packages stand; starts what is missing (builds, a new profile). */
  sync(owner: ProfileOwner, wanted: string[], opts: { retry?: string[] } = {}): OwnerPackages {
    const unique = [...new Set(wanted)];
    const id = profileId(owner);
    this.#wants.set(id, { owner, wanted: unique });
    for (const attr of unique) {
      if (this.#localRefusal(attr)) continue;
      void this.#builds.ensure(attr, { retry: opts.retry?.includes(attr) });
    }
    void this.#updateProfile(id);
    return this.#snapshot(id);
  }

  /**
   * Wait until the wanted packages (or only those in `waitFor`) are ready or
   * failed and the profile holds every wanted package that is ready by then.
   */
  async settled(
    owner: ProfileOwner,
    wanted: string[],
    opts: { retry?: string[]; waitFor?: string[] } = {},
  ): Promise<OwnerPackages> {
    this.sync(owner, wanted, opts);
    const waitFor = [...new Set(opts.waitFor ?? wanted)];
    await Promise.all(
      waitFor.filter((a) => !this.#localRefusal(a)).map((a) => this.#builds.ensure(a)),
    );
    return this.#updateProfile(profileId(owner));
  }

  /** Show the owner's current profile in the sandbox from now on (and follow its changes). */
  attach(sandboxId: string, owner: ProfileOwner): OwnerPackages {
    const id = profileId(owner);
    this.#attached.set(sandboxId, id);
    const snapshot = this.#snapshot(id);
    this.#links.point(sandboxId, snapshot.storePath);
    return snapshot;
  }

  #snapshot(id: string): OwnerPackages {
    const want = this.#wants.get(id);
    const record = this.#profiles.get(id);
    const packages = (want?.wanted ?? Object.keys(record?.packages ?? {})).map((attr) => {
      const refused = this.#localRefusal(attr);
      const state: BuildState = refused
        ? { state: "failed", reason: refused, log: [], at: 0 }
        : (this.#builds.state(attr) ?? { state: "queued" });
      return { attr, state };
    });
    return { packages, ...(record ? { storePath: record.storePath } : {}) };
  }

  #onBuild(attr: string, state: BuildState): void {
    if (state.state !== "ready") return;
    for (const [id, want] of this.#wants)
      if (want.wanted.includes(attr)) void this.#updateProfile(id);
  }

  /** Make the owner's profile hold its ready packages (coalesced: one update per owner at a time). */
  #updateProfile(id: string): Promise<OwnerPackages> {
    const pending = this.#pendingProfiles.get(id);
    if (pending) return pending;
    const update = this.#exclusive(async () => {
      this.#pendingProfiles.delete(id);
      const want = this.#wants.get(id);
      if (!want) return this.#snapshot(id);
      const ready: Record<string, string[]> = {};
      for (const attr of want.wanted) {
        const state = this.#localRefusal(attr) ? undefined : this.#builds.state(attr);
        if (state?.state === "ready") ready[attr] = state.paths;
      }
      const record = this.#profiles.get(id);
      if (Object.keys(ready).length === 0) {
        // Nothing ready (yet): an empty profile is no profile.
        if (record) {
          this.#profiles.remove(id);
          this.#relink(id, undefined);
        }
        return this.#snapshot(id);
      }
      try {
        const next = await this.#profiles.switchTo(want.owner, ready);
        if (next.storePath !== record?.storePath) this.#relink(id, next.storePath);
      } catch (err) {
        this.#log.error({ err, profile: id }, "could not update a package profile");
      }
      return this.#snapshot(id);
    });
    this.#pendingProfiles.set(id, update);
    return update;
  }

  #relink(id: string, storePath: string | undefined): void {
    for (const [sandboxId, owner] of this.#attached)
      if (owner === id) this.#links.point(sandboxId, storePath);
  }

  #exclusive<T>(job: () => Promise<T>): Promise<T> {
    const run = this.#serial.then(job, job);
    // The chain's tail: a failed job's error went to its own caller.
    this.#serial = settled(run);
    return run;
  }

  /**
   * Collect garbage: profiles whose owner wants nothing any more (`wantedOf`
   * says undefined or empty) are deleted, live ones keep only their current
   * generation, results nobody wants are dropped, then `nix-store --gc` removes
   * every store path no root holds (the roots left: live profiles, packages
   * still wanted, and whatever else on the host roots paths in this store).
   */
  /**
   * Remove every profile of one person (an erasure): its record names them.
   * Returns how many. The packages only they wanted go at the next `gc`.
   */
  forgetPerson(userKey: string): Promise<number> {
    return this.#exclusive(async () => {
      let removed = 0;
      for (const id of this.#profiles.ids()) {
        if (this.#profiles.get(id)?.userKey !== userKey) continue;
        this.#profiles.remove(id);
        this.#wants.delete(id);
        this.#relink(id, undefined);
        removed++;
      }
      for (const [id, want] of this.#wants)
        if (want.owner.userKey === userKey) this.#wants.delete(id);
      return removed;
    });
  }

  gc(wantedOf: (owner: ProfileOwner) => Promise<string[] | undefined>): Promise<GcReport> {
    return this.#exclusive(async () => {
      let profilesRemoved = 0;
      const stillWanted = new Set<string>();
      for (const id of this.#profiles.ids()) {
        const record = this.#profiles.get(id);
        const wanted = record ? await wantedOf(record) : undefined;
        if (!record || !wanted?.length) {
          this.#profiles.remove(id);
          this.#wants.delete(id);
          this.#relink(id, undefined);
          profilesRemoved++;
          continue;
        }
        for (const attr of wanted) stillWanted.add(attr);
        await this.#profiles.pruneGenerations(id);
      }
      for (const [id, want] of this.#wants) {
        if (!this.#profiles.get(id) && !(await wantedOf(want.owner))?.length)
          this.#wants.delete(id);
        else for (const attr of want.wanted) stillWanted.add(attr);
      }
      for (const attr of this.#builds.built())
        if (!stillWanted.has(attr)) this.#builds.forget(attr);
      this.#dropOtherSets();
      const res = await this.#cli.run("nix-store", ["--gc"], { timeoutMs: 60 * 60_000 });
      if (res.code !== 0) throw new Error(`nix-store --gc failed: ${res.tail.at(-1) ?? ""}`);
      // "N store paths deleted, X MiB freed" (stdout).
      const summary = /(\d+) store paths? deleted, ([\d.]+) MiB freed/.exec(res.stdout);
      const report: GcReport = {
        profilesRemoved,
        pathsDeleted: summary ? Number(summary[1]) : 0,
        bytesFreed: summary ? Math.round(Number(summary[2]) * 1024 * 1024) : 0,
      };
      this.#log.info(report, "package garbage collected");
      return report;
    });
  }

  /** Results of a package set lobu.toml no longer names. */
  #dropOtherSets(): void {
    const parent = dirname(this.#builds.resultsDir);
    let sets: string[] = [];
    try {
      sets = readdirSync(parent);
    } catch {
      // No results folder yet: no other set to drop.
    }
    for (const set of sets)
      if (join(parent, set) !== this.#builds.resultsDir)
        rmSync(join(parent, set), { recursive: true, force: true });
  }
}

export type { BuildState, ProfileOwner, Settled };
