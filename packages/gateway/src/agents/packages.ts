import { dirname } from "node:path";
import type { LobuConfig } from "@lobu/core";
import type { PackageStatusView } from "@lobu/core/views";
import type { Logger } from "pino";
import type { PersonDataKind } from "../domain/person-data.ts";
import { type GcReport, NixPackages, type OwnerPackages } from "../nix/packages.ts";
import type { ProfileOwner } from "../nix/profiles.ts";
import { nixSettings } from "../nix/settings.ts";
import type { UserAgentSettings, UserSettingsStore } from "../people/user-settings.ts";
import type { PackageMounts } from "../sandbox/process/packages.ts";
import type { SandboxTier } from "../sandbox/tier.ts";
import type { SkillCatalog } from "../skills/catalog.ts";
import type { AgentDefinition, AgentRegistry } from "./registry.ts";

/** Why packages cannot be used, and what would change that. */
export interface PackagesUnavailable {
  reason: string;
  hint: string;
}

export interface AgentPackagesDeps {
  /** Nix, when `[packages]` is on and Nix is installed; otherwise why not. */
  nix: NixPackages | PackagesUnavailable;
  tier: Pick<SandboxTier, "noPackages">;
  agents: Pick<AgentRegistry, "get">;
  userSettings: Pick<UserSettingsStore, "get">;
  skills: Pick<SkillCatalog, "pick">;
  log: Logger;
}

/** The packages a person's agent gets: its skills' (the agent's and the person's) and their own. */
export function wantedPackages(
  agent: Pick<AgentDefinition, "skills">,
  settings: Pick<UserAgentSettings, "skills" | "packages">,
  skills: Pick<SkillCatalog, "pick">,
): string[] {
  const fromSkills = skills.pick([...agent.skills, ...settings.skills]).flatMap((s) => s.packages);
  return [...new Set([...fromSkills, ...settings.packages])];
}

/** Open Nix for `[packages]` (or say why packages are unavailable). */
export async function openNix(opts: {
  config: LobuConfig;
  dataDir: string;
  configPath?: string;
  log: Logger;
  env?: NodeJS.ProcessEnv;
}): Promise<NixPackages | PackagesUnavailable> {
  const section = opts.config.packages;
  if (!section.enabled)
    return {
      reason: "Nix packages are not enabled on this gateway",
      hint: "An operator enables them with [packages] enabled = true in lobu.toml (see docs/packages.md).",
    };
  const settings = nixSettings(section, {
    dataDir: opts.dataDir,
    configDir: opts.configPath ? dirname(opts.configPath) : process.cwd(),
  });
  const nix = await NixPackages.open(settings, opts.log, opts.env);
  if (nix instanceof NixPackages) return nix;
  opts.log.warn("[packages] is enabled but Nix is not installed: packages are refused");
  return {
    reason: nix.unavailable,
    hint: "An operator installs Nix on the gateway's host (apt-get install nix-bin); `lobu doctor` checks it.",
  };
}

/** A package's state as the settings page shows it. */
export function statusView(s: OwnerPackages["packages"][number]["state"]): PackageStatusView {
  switch (s.state) {
    case "queued":
      return { state: "queued" };
    case "building":
      return { state: "building", detail: s.detail };
    case "ready":
      return { state: "ready", version: s.version };
    case "failed":
      return { state: "failed", reason: s.reason, log: s.log };
  }
}

/**
 * Nix packages as agents and people see them: which packages a person's agent
 * wants, whether this gateway can provide them (enabled, Nix installed, a
 * sandbox tier that runs programs), their state for the settings page, the
 * profile each turn's sandbox shows, and garbage collection of profiles
 * nobody wants any more.
 */
export class AgentPackages {
  readonly #deps: AgentPackagesDeps;

  constructor(deps: AgentPackagesDeps) {
    this.#deps = deps;
  }

  /** Where sandboxes see packages (undefined: nothing to mount). */
  mounts(): PackageMounts | undefined {
    const nix = this.#deps.nix;
    return nix instanceof NixPackages ? nix.mounts() : undefined;
  }

  /** Nix when packages can be used here; otherwise why not. */
  #usable(): NixPackages | PackagesUnavailable {
    const nix = this.#deps.nix;
    if (!(nix instanceof NixPackages)) return nix;
    const tier = this.#deps.tier.noPackages();
    if (tier)
      return {
        reason: tier,
        hint: 'An operator can run agents in process sandboxes (sandbox.driver = "process").',
      };
    return nix;
  }

  /** Why packages cannot be used on this gateway, if they cannot. */
  unavailable(): PackagesUnavailable | undefined {
    const usable = this.#usable();
    return usable instanceof NixPackages ? undefined : usable;
  }

  /**
   * Why `name` cannot be added (packages unavailable, the operator's lists, not
   * in the package set: with the closest name), or undefined when it can.
   */
  async refusal(
    name: string,
  ): Promise<{ kind: "unavailable" | "invalid"; reason: string; hint?: string } | undefined> {
    const usable = this.#usable();
    if (!(usable instanceof NixPackages)) return { kind: "unavailable", ...usable };
    const reason = await usable.refusal(name);
    return reason ? { kind: "invalid", reason } : undefined;
  }

  /** What the person's agent wants, or undefined when the agent no longer exists. */
  async wanted(owner: ProfileOwner): Promise<string[] | undefined> {
    const agent = await this.#deps.agents.get(owner.agentId);
    if (!agent) return undefined;
    const settings = await this.#deps.userSettings.get(owner.agentId, owner.userKey);
    return wantedPackages(agent, settings, this.#deps.skills);
  }

  /**
   * Each wanted package's state, for the settings page (starting what is
   * missing, so "queued" is true). `retry` builds these again if they failed.
   */
  async status(
    owner: ProfileOwner,
    opts: { retry?: string[] } = {},
  ): Promise<Record<string, PackageStatusView>> {
    const usable = this.#usable();
    const wanted = (await this.wanted(owner)) ?? [];
    if (!(usable instanceof NixPackages) || wanted.length === 0) return {};
    const now = usable.sync(owner, wanted, opts);
    return Object.fromEntries(now.packages.map((p) => [p.attr, statusView(p.state)]));
  }

  /**
   * Before a turn: show the sender's profile in the sandbox (starting what is
   * missing; nothing waits), and say to the agent what is on PATH, what is
   * still being installed and what cannot be used.
   */
  async forTurn(
    sandboxId: string,
    owner: ProfileOwner,
    wanted: string[],
  ): Promise<string | undefined> {
    const usable = this.#usable();
    if (!(usable instanceof NixPackages)) {
      return wanted.length
        ? `# Nix packages\nThe person chose these Nix packages: ${wanted.join(", ")}. They cannot be used here: ${usable.reason}. If a task needs them, say so.`
        : undefined;
    }
    usable.sync(owner, wanted);
    return turnNote(usable.attach(sandboxId, owner));
  }

  /**
   * A granted package: wait until it (and the rest of the person's packages)
   * is built and in their profile, and show it in the sandbox. Returns its state.
   */
  async install(
    sandboxId: string,
    owner: ProfileOwner,
    name: string,
  ): Promise<OwnerPackages["packages"][number]["state"]> {
    const usable = this.#usable();
    if (!(usable instanceof NixPackages))
      return { state: "failed", reason: usable.reason, log: [], at: Date.now() };
    const wanted = (await this.wanted(owner)) ?? [];
    const result = await usable.settled(owner, wanted.includes(name) ? wanted : [...wanted, name], {
      retry: [name],
      waitFor: [name],
    });
    usable.attach(sandboxId, owner);
    return (
      result.packages.find((p) => p.attr === name)?.state ?? {
        state: "failed",
        reason: `${name} is no longer among the person's packages`,
        log: [],
        at: Date.now(),
      }
    );
  }

  /** The person's Nix profiles (package names, named by their user key), as person data. */
  personData(): PersonDataKind {
    return {
      name: "packages",
      export: async () => undefined, // their settings (exported) say which packages they chose
      erase: async (p) => {
        const nix = this.#deps.nix;
        return { profiles: nix instanceof NixPackages ? await nix.forgetPerson(p.userKey) : 0 };
      },
    };
  }

  /** Remove unused profiles and collect the store's garbage (see NixPackages.gc). */
  async gc(): Promise<GcReport | undefined> {
    const nix = this.#deps.nix;
    if (!(nix instanceof NixPackages)) return undefined;
    return nix.gc((owner) => this.wanted(owner));
  }

  /** Collect garbage every `packages.gc_interval`; returns the stop function. */
  scheduleGc(): () => void {
    const nix = this.#deps.nix;
    if (!(nix instanceof NixPackages)) return () => {};
    const timer = setInterval(() => {
      this.gc().catch((err) => this.#deps.log.error({ err }, "package garbage collection failed"));
    }, nix.settings.gcIntervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}

/** What the agent is told about its packages at the start of a turn. */
export function turnNote(now: OwnerPackages): string | undefined {
  if (now.packages.length === 0) return undefined;
  const of = (state: string) => now.packages.filter((p) => p.state.state === state);
  const lines = ["# Nix packages"];
  const ready = of("ready").map((p) =>
    p.state.state === "ready" && p.state.version ? `${p.attr} (${p.state.version})` : p.attr,
  );
  if (ready.length) lines.push(`On PATH: ${ready.join(", ")}.`);
  const pending = [...of("queued"), ...of("building")].map((p) => p.attr);
  if (pending.length)
    lines.push(
      `Still being installed: ${pending.join(", ")}. They appear on PATH by themselves when ready (usually within minutes); if a task needs them now, tell the person they are being installed.`,
    );
  for (const p of of("failed"))
    if (p.state.state === "failed")
      lines.push(`Could not be installed: ${p.attr} (${p.state.reason}).`);
  return lines.join("\n");
}
