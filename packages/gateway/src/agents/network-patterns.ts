import type { LobuConfig } from "@lobu/core";
import { canonicalPattern } from "../domain/host-patterns.ts";
import { publicSuffixProblem } from "../domain/public-suffixes.ts";

/**
 * Operator domain patterns (lobu.toml and agents created through the API) are
 * checked before they are used: each must be a domain pattern, and a pattern
 * that names a public suffix (`*.co.uk`, `*.github.io`, `s3.amazonaws.com`:
 * everyone's sites) is refused unless the operator opted into exactly that
 * pattern with `allow_public_suffixes`. Deny lists may name anything.
 */

export interface PatternReport {
  /** Refusals, each naming the key. */
  errors: string[];
  /** Opted-in public suffixes in use, each naming the key (logged at startup). */
  warnings: string[];
}

/** Canonical forms of the opt-ins; invalid spellings are reported by the caller's schema. */
function canonicalSet(patterns: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const p of patterns) {
    try {
      out.add(canonicalPattern(p));
    } catch {
      // zod already refused it (lobu.toml); the API has no opt-in of its own.
    }
  }
  return out;
}

/** Check one list of granting patterns under `key`. */
function checkList(
  key: string,
  patterns: readonly string[],
  optIns: ReadonlySet<string>,
  optInKey: string,
  report: PatternReport,
): void {
  for (const raw of patterns) {
    let pattern: string;
    try {
      pattern = canonicalPattern(raw);
    } catch (err) {
      report.errors.push(`${key}: ${(err as Error).message}`);
      continue;
    }
    const problem = publicSuffixProblem(pattern);
    if (!problem) continue;
    if (optIns.has(pattern)) {
      report.warnings.push(`${key}: ${problem} (opted in by ${optInKey})`);
    } else {
      report.errors.push(
        `${key}: ${problem}; name the hosts you mean, or list "${pattern}" in ${optInKey} to allow it anyway`,
      );
    }
  }
}

/** Every granting pattern in lobu.toml: [network] allow, agents' allow and secret hosts, skill domains. */
export function configPatternReport(config: LobuConfig, file = "lobu.toml"): PatternReport {
  const report: PatternReport = { errors: [], warnings: [] };
  const globalOptIns = canonicalSet(config.network.allow_public_suffixes);
  const globalKey = "[network] allow_public_suffixes";
  checkList(`${file}: network.allow`, config.network.allow, globalOptIns, globalKey, report);
  for (const [id, agent] of Object.entries(config.agents)) {
    const optIns = new Set([...globalOptIns, ...canonicalSet(agent.network.allow_public_suffixes)]);
    const optInKey = `${globalKey} or [agents.${id}.network] allow_public_suffixes`;
    checkList(`${file}: agents.${id}.network.allow`, agent.network.allow, optIns, optInKey, report);
    for (const [env, binding] of Object.entries(agent.secrets)) {
      checkList(
        `${file}: agents.${id}.secrets.${env}.hosts`,
        binding.hosts,
        optIns,
        optInKey,
        report,
      );
    }
  }
  for (const [id, skill] of Object.entries(config.skills)) {
    checkList(`${file}: skills.${id}.domains`, skill.domains, globalOptIns, globalKey, report);
  }
  const optInLists: [string, readonly string[]][] = [
    ["network", config.network.allow_public_suffixes],
    ...Object.entries(config.agents).map(([id, a]): [string, readonly string[]] => [
      `agents.${id}.network`,
      a.network.allow_public_suffixes,
    ]),
  ];
  for (const [section, list] of optInLists) {
    for (const p of canonicalSet(list)) {
      if (!publicSuffixProblem(p)) {
        report.warnings.push(
          `${file}: ${section}.allow_public_suffixes: "${p}" does not name a public suffix; the opt-in is not needed`,
        );
      }
    }
  }
  return report;
}

/**
 * The same for an agent created or changed through the API: its allow list and
 * secret hosts, with only lobu.toml's global opt-ins (the API cannot opt in).
 * Deny patterns must still be patterns.
 */
export function agentPatternProblems(
  agent: {
    network?: { allow?: string[]; deny?: string[] };
    secrets?: Record<string, { hosts: string[] }>;
  },
  globalOptIns: readonly string[],
): string[] {
  const report: PatternReport = { errors: [], warnings: [] };
  const optIns = canonicalSet(globalOptIns);
  const optInKey = "[network] allow_public_suffixes in lobu.toml";
  checkList("network.allow", agent.network?.allow ?? [], optIns, optInKey, report);
  for (const raw of agent.network?.deny ?? []) {
    try {
      canonicalPattern(raw);
    } catch (err) {
      report.errors.push(`network.deny: ${(err as Error).message}`);
    }
  }
  for (const [env, binding] of Object.entries(agent.secrets ?? {})) {
    checkList(`secrets.${env}.hosts`, binding.hosts, optIns, optInKey, report);
  }
  return report.errors;
}

/**
 * The domains skill folders bring (their SKILL.md's `lobu.domains`), checked
 * like lobu.toml's skill domains, each under the file and key that names it.
 * What `[skills.<id>] domains` lists itself is checked by configPatternReport.
 */
export function skillPatternReport(
  skills: readonly { name: string; where: string; domains: readonly string[] }[],
  config: LobuConfig,
): PatternReport {
  const report: PatternReport = { errors: [], warnings: [] };
  const optIns = canonicalSet(config.network.allow_public_suffixes);
  for (const skill of skills) {
    const inToml = new Set(config.skills[skill.name]?.domains ?? []);
    const own = skill.domains.filter((d) => !inToml.has(d));
    checkList(`${skill.where}.domains`, own, optIns, "[network] allow_public_suffixes", report);
  }
  return report;
}
