import type { LobuConfig } from "@lobu/core";
import { canonicalPattern, firstDenied } from "../domain/host-patterns.ts";
import { policyRefusal } from "../domain/package-policy.ts";
import { publicSuffixProblem } from "../domain/public-suffixes.ts";
import type { Skill } from "./catalog.ts";

/**
 * What a skill needs, checked against lobu.toml. Installing a skill brings its
 * needs along, each still subject to the operator's policy: MCP servers must
 * be declared under [mcp.<id>] (a skill never declares one), domains pass the
 * same allow, deny and public-suffix rules as lobu.toml's, packages go to the
 * package provisioning, and a secret reaches the shell only through an
 * agent's [agents.<id>.secrets] binding. A skill never widens tool policy or
 * approvals.
 */
export type NeedKind = "mcp" | "packages" | "domains" | "secrets";

export interface NeedCheck {
  kind: NeedKind;
  value: string;
  ok: boolean;
  /** What is wrong, when not ok. */
  problem?: string;
  /** What to add or change, when not ok. */
  fix?: string;
  /** Something worth knowing when ok (e.g. a deny rule that wins). */
  note?: string;
}

/** The agents of lobu.toml that install the skill for everyone. */
export function agentsUsing(skill: Pick<Skill, "name">, config: LobuConfig): string[] {
  return Object.entries(config.agents)
    .filter(([, a]) => a.skills.includes(skill.name))
    .map(([id]) => id);
}

function mcpCheck(id: string, config: LobuConfig): NeedCheck {
  if (config.mcp[id]) return { kind: "mcp", value: id, ok: true };
  return {
    kind: "mcp",
    value: id,
    ok: false,
    problem: `MCP server "${id}" is not declared`,
    fix: `declare it in lobu.toml: [mcp.${id}] url = "https://…" (the server's streamable-HTTP endpoint)`,
  };
}

function domainCheck(pattern: string, config: LobuConfig, agents: string[]): NeedCheck {
  let canonical: string;
  try {
    canonical = canonicalPattern(pattern);
  } catch (err) {
    return {
      kind: "domains",
      value: pattern,
      ok: false,
      problem: (err as Error).message,
      fix: "write a domain like example.com or *.example.com",
    };
  }
  const suffix = publicSuffixProblem(canonical);
  const optedIn = config.network.allow_public_suffixes.some((p) => {
    try {
      return canonicalPattern(p) === canonical;
    } catch {
      return false;
    }
  });
  if (suffix && !optedIn)
    return {
      kind: "domains",
      value: pattern,
      ok: false,
      problem: `${suffix}; the gateway refuses to start with it`,
      fix: `ask the skill's author for the hosts it means, or list "${canonical}" in [network] allow_public_suffixes`,
    };
  // Deny wins: a host the operator denies stays denied, skill or not.
  const probe = canonical.startsWith("*.") ? canonical.slice(2) : canonical;
  const denied = [
    config.network.deny,
    ...agents.map((id) => config.agents[id]?.network.deny ?? []),
  ].flatMap((deny) => firstDenied(probe, deny) ?? []);
  return denied.length
    ? { kind: "domains", value: pattern, ok: true, note: `denied by ${denied[0]} (deny wins)` }
    : { kind: "domains", value: pattern, ok: true };
}

/** A package is provided only where [packages] is on and its allow/deny lists let it through. */
function packageCheck(name: string, config: LobuConfig): NeedCheck {
  if (!config.packages.enabled)
    return {
      kind: "packages",
      value: name,
      ok: false,
      problem: `packages are off on this gateway, so ${name} is not provided`,
      fix: "[packages] enabled = true in lobu.toml (docs/packages.md; needs Nix on the gateway host)",
    };
  const refused = policyRefusal(name, config.packages);
  if (refused)
    return {
      kind: "packages",
      value: name,
      ok: false,
      problem: refused,
      fix: `change [packages] allow/deny in lobu.toml if ${name} should be provided`,
    };
  return { kind: "packages", value: name, ok: true, note: "provided through Nix" };
}

function secretCheck(name: string, config: LobuConfig, agents: string[]): NeedCheck {
  const binds = (id: string) => Boolean(config.agents[id]?.secrets[name]);
  const where = agents.length ? agents : Object.keys(config.agents);
  const missing = where.filter((id) => !binds(id));
  if (agents.length ? missing.length === 0 : missing.length < where.length)
    return { kind: "secrets", value: name, ok: true };
  const ids = agents.length ? missing : ["<agent>"];
  return {
    kind: "secrets",
    value: name,
    ok: false,
    problem: `no agent${agents.length ? ` using the skill (${missing.join(", ")})` : ""} binds ${name}, so the agent's shell never has it`,
    fix: ids
      .map((id) => `[agents.${id}.secrets] ${name} = { secret = "<name>", hosts = ["<api host>"] }`)
      .join("; "),
  };
}

/** Every need of the skill, checked. */
export function checkNeeds(
  skill: Pick<Skill, "name" | "mcp" | "packages" | "domains" | "secrets">,
  config: LobuConfig,
): NeedCheck[] {
  const agents = agentsUsing(skill, config);
  return [
    ...skill.mcp.map((id) => mcpCheck(id, config)),
    ...skill.packages.map((p) => packageCheck(p, config)),
    ...skill.domains.map((d) => domainCheck(d, config, agents)),
    ...skill.secrets.map((s) => secretCheck(s, config, agents)),
  ];
}

/** The needs lobu.toml does not meet, each with what to add. */
export function unmetNeeds(
  skill: Pick<Skill, "name" | "mcp" | "packages" | "domains" | "secrets">,
  config: LobuConfig,
): (NeedCheck & { problem: string; fix: string })[] {
  return checkNeeds(skill, config).flatMap((n) =>
    n.ok ? [] : [{ ...n, problem: n.problem ?? "", fix: n.fix ?? "" }],
  );
}
