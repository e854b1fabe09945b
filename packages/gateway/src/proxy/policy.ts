import type { Logger } from "@lobu/core";
import { type DomainDecision, decide, firstMatch, normalizeHost } from "../domain/host-patterns.ts";
import { parseIpLiteral } from "../domain/ip-literal.ts";
import {
  checkAddress,
  type ResolvedAddress,
  type Resolver,
  type VetOptions,
  vetHost,
} from "./addresses.ts";
import type { Refusal } from "./explain.ts";
import { type Refused, refused, upstreamError } from "./refusals.ts";

/**
 * The request policy decision: may this sandbox reach this host? The domain
 * policy (deny wins, then allow) and the address guard (never loopback, private,
 * link-local or metadata addresses unless the operator opted a range in), from
 * one DNS resolution whose answer is what the proxy then connects to.
 */

export interface EgressPolicy {
  /** Patterns an operator allowed (lobu.toml, the admin API, skills, secret bindings, providers). */
  allow: string[];
  deny: string[];
  /** Private ranges the operator opted into; they apply only to hosts `allow` matches. */
  allowPrivateRanges: string[];
  /**
   * Patterns a person allowed for their own agent (settings page, capability
   * grants). They open names, never the operator's private ranges: otherwise a
   * user could reach any internal host that happens to be in an opted-in range.
   */
  userAllow?: string[];
  agentId: string;
}

/** Where the proxy reads a sandbox's policy from. */
export interface PolicySource {
  /** The network policy of a sandbox; null = unknown sandbox (refused). */
  policyFor(sandboxId: string): Promise<EgressPolicy | null>;
  /**
   * The agent of a sandbox only (null = unknown sandbox), for requests that need
   * its identity but no host decision (the internal API). Default: policyFor's.
   */
  agentOf?(sandboxId: string): Promise<string | null>;
  logger?: Logger;
  /** DNS resolver for the address guard. Default: the system's. */
  resolver?: Resolver;
}

export type PolicyLoaded = { ok: true; policy: EgressPolicy } | Refused;

/** An allowed host: its canonical name and the vetted addresses to connect to. */
export type HostDecision = { ok: true; host: string; addresses: ResolvedAddress[] } | Refused;

export type Authorized =
  | { ok: true; policy: EgressPolicy; host: string; addresses: ResolvedAddress[] }
  | Refused;

/** Every pattern that allows a host, operator's and user's. */
function allowList(policy: EgressPolicy): string[] {
  return policy.userAllow?.length ? [...policy.allow, ...policy.userAllow] : policy.allow;
}

/** The private ranges that apply to a canonical host: only for operator-allowed hosts. */
function privateRangesFor(policy: EgressPolicy, host: string): string[] {
  return policy.allowPrivateRanges.length > 0 && firstMatch(host, policy.allow) !== undefined
    ? policy.allowPrivateRanges
    : [];
}

/** `lookup`'s answer for a sandbox, or a refusal about `host` (unknown sandbox, or the lookup failed). */
async function loadFor<T>(
  source: PolicySource,
  sandboxId: string,
  host: string,
  lookup: () => Promise<T | null>,
): Promise<{ ok: true; value: T } | Refused> {
  let value: T | null;
  try {
    value = await lookup();
  } catch (err) {
    source.logger?.error({ err, sandboxId }, "egress policy lookup failed");
    return refused(upstreamError(host, "the gateway could not load this sandbox's network policy"));
  }
  if (value === null) {
    return refused({ status: 403, kind: "identity", host, reason: `unknown sandbox ${sandboxId}` });
  }
  return { ok: true, value };
}

/** The sandbox's policy, or a refusal about `host` (unknown sandbox, or the lookup failed). */
export async function loadPolicy(
  source: PolicySource,
  sandboxId: string,
  host: string,
): Promise<PolicyLoaded> {
  const loaded = await loadFor(source, sandboxId, host, () => source.policyFor(sandboxId));
  return loaded.ok ? { ok: true, policy: loaded.value } : loaded;
}

/** The sandbox's agent, refused like loadPolicy; without its allow lists and the person's grants. */
export async function loadAgent(
  source: PolicySource,
  sandboxId: string,
  host: string,
): Promise<{ ok: true; agentId: string } | Refused> {
  const loaded = await loadFor(source, sandboxId, host, async () =>
    source.agentOf
      ? source.agentOf(sandboxId)
      : ((await source.policyFor(sandboxId))?.agentId ?? null),
  );
  return loaded.ok ? { ok: true, agentId: loaded.value } : loaded;
}

/** May `sandboxId` reach `rawHost`? Its policy, then decideHost. */
export async function authorizeHost(
  source: PolicySource,
  sandboxId: string,
  rawHost: string,
): Promise<Authorized> {
  const loaded = await loadPolicy(source, sandboxId, rawHost);
  if (!loaded.ok) return loaded;
  const decision = await decideHost(loaded.policy, rawHost, source.resolver);
  return decision.ok ? { ...decision, policy: loaded.policy } : decision;
}

/** Domain policy, then the address guard (one resolution; the answer is what we connect to). */
export async function decideHost(
  policy: EgressPolicy,
  rawHost: string,
  resolver?: Resolver,
): Promise<HostDecision> {
  const vetOpts: VetOptions = {
    allowPrivateRanges: policy.allowPrivateRanges,
    ...(resolver ? { resolver } : {}),
  };
  const guarded = await refuseGuardedLiteral(policy, rawHost, vetOpts);
  if (guarded) return refused(guarded);
  const d = decide({ host: rawHost, allow: allowList(policy), deny: policy.deny });
  if (!d.allowed) return refused(domainRefusal(policy, d, rawHost));
  const host = d.host!;
  const ranges = privateRangesFor(policy, host);
  const vet = await vetHost(host, { ...vetOpts, allowPrivateRanges: ranges });
  if (vet.ok) return { ok: true, host, addresses: vet.addresses };
  let reason = vet.reason;
  if (vet.status === 403 && ranges !== policy.allowPrivateRanges) {
    // Would the operator's ranges have let it through? Then say why they did not apply.
    const withRanges = await vetHost(host, vetOpts);
    if (withRanges.ok) {
      reason += `; allow_private_ranges applies only to hosts allowed in lobu.toml, and ${host} is allowed only from the settings page`;
    }
  }
  return refused({
    status: vet.status,
    kind: vet.status === 403 ? "private_address" : "upstream",
    host,
    reason,
    agentId: policy.agentId,
  });
}

/**
 * An address (or localhost) the guard refuses anyway: say that, not "ask to
 * allow it". Null when `rawHost` is a name, or a literal the guard lets through.
 */
async function refuseGuardedLiteral(
  policy: EgressPolicy,
  rawHost: string,
  vetOpts: VetOptions,
): Promise<Refusal | null> {
  const canonical = normalizeHost(rawHost);
  const literal =
    canonical &&
    (parseIpLiteral(canonical) || canonical === "localhost" || canonical.endsWith(".localhost"));
  if (!literal) return null;
  const early = await vetHost(canonical, vetOpts);
  if (early.ok) return null;
  return {
    status: early.status,
    kind: "private_address",
    host: canonical,
    reason: early.reason,
    agentId: policy.agentId,
  };
}

function domainRefusal(policy: EgressPolicy, d: DomainDecision, rawHost: string): Refusal {
  return {
    status: d.host ? 403 : 400,
    kind: d.host === null ? "bad_request" : d.rule ? "denied_rule" : "not_allowed",
    host: d.host ?? rawHost,
    reason: d.reason,
    agentId: policy.agentId,
  };
}

/**
 * A request inside an intercepted tunnel: the policy re-checked (it may have
 * changed since the CONNECT) against the addresses vetted then, without
 * resolving again. Null when it may go on.
 */
export function refuseInTunnel(
  policy: EgressPolicy,
  tunnel: { host: string; addresses: readonly ResolvedAddress[] },
): Refusal | null {
  const d = decide({ host: tunnel.host, allow: allowList(policy), deny: policy.deny });
  const ranges = privateRangesFor(policy, tunnel.host);
  const blocked = tunnel.addresses.map((a) => checkAddress(a.address, ranges)).find((c) => !c.ok);
  if (d.allowed && !blocked) return null;
  return {
    status: 403,
    kind: blocked ? "private_address" : d.rule ? "denied_rule" : "not_allowed",
    host: tunnel.host,
    reason: blocked && !blocked.ok ? blocked.reason : d.reason,
    agentId: policy.agentId,
  };
}
