import { domainToASCII } from "node:url";
import { DomainPattern } from "@lobu/core";
import { parseIpLiteral } from "./ip-literal.ts";
import { publicSuffixOf, withinBase } from "./public-suffixes.ts";

/**
 * Domain policy: which host names a sandbox may reach. Patterns are `example.com`
 * (exactly that host), `*.example.com` (any subdomain, not the apex) and `*`
 * (everything). Hosts and patterns are compared in one canonical form: lower case,
 * no trailing dot, IDN as punycode, IP literals in their canonical notation.
 */

/** Canonical host, or null when it is not a valid host name or IP literal. */
export function normalizeHost(host: string): string | null {
  let h = host.trim();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (h.endsWith(".")) h = h.slice(0, -1);
  if (h === "" || h.length > 253) return null;
  const ip = parseIpLiteral(h);
  if (ip) return ip.toString();
  if (h.includes(":") || h.includes("%")) return null;
  const ascii = domainToASCII(h);
  if (!ascii || ascii.startsWith(".") || ascii.includes("..")) return null;
  return ascii;
}

/** Canonical pattern; throws on something that is not a domain pattern. */
export function normalizePattern(pattern: string): string {
  const p = pattern.trim();
  if (p === "*") return "*";
  const wildcard = p.startsWith("*.");
  const host = normalizeHost(wildcard ? p.slice(2) : p);
  if (!host || host.includes("*")) {
    throw new Error(`"${pattern}" is not a domain pattern (use example.com, *.example.com or *)`);
  }
  return wildcard ? `*.${host}` : host;
}

/**
 * The canonical form of a typed domain pattern: case, one trailing dot and IDN
 * spellings (`*.Bücher.example.`) come down to `*.xn--bcher-kva.example`, which
 * must then be a plain domain pattern (no scheme, path or port). Throws otherwise.
 */
export function canonicalPattern(input: string): string {
  let raw = input.trim().toLowerCase();
  if (raw.endsWith(".") && !raw.endsWith("..") && raw !== "*.") raw = raw.slice(0, -1);
  const wildcard = raw.startsWith("*.");
  const name = wildcard ? raw.slice(2) : raw;
  // domainToASCII would quietly drop a scheme, a path or a port: refuse them first.
  const ascii = /[\s/\\:?#@%[\]]/.test(name)
    ? ""
    : /^[\x21-\x7e]*$/.test(name)
      ? name
      : domainToASCII(name);
  const typed = wildcard ? `*.${ascii}` : ascii;
  if (!ascii || !DomainPattern.safeParse(typed).success) {
    throw new Error(`"${input}" is not a domain pattern (use example.com, *.example.com or *)`);
  }
  return normalizePattern(typed);
}

/** Normalized patterns by their configured spelling (null: invalid); checked on every request. */
const patternCache = new Map<string, string | null>();

function cachedPattern(pattern: string): string | null {
  let p = patternCache.get(pattern);
  if (p === undefined) {
    try {
      p = normalizePattern(pattern);
    } catch {
      p = null;
    }
    if (patternCache.size >= 10_000) patternCache.clear();
    patternCache.set(pattern, p);
  }
  return p;
}

/**
 * Whether a pattern allows a canonical host (normalized on the fly). A wildcard
 * stops at public suffixes below its base (see suffixes.ts): `*.amazonaws.com`
 * allows `sts.amazonaws.com`, never `bucket.s3.amazonaws.com`, a stranger's
 * host under the public suffix `s3.amazonaws.com`. Used for everything that
 * grants: allow lists and the hosts a secret may be sent to.
 */
export function matchesPattern(host: string, pattern: string): boolean {
  const p = cachedPattern(pattern);
  if (p === null) return false;
  if (p === "*") return true;
  if (p.startsWith("*.")) return host.endsWith(p.slice(1)) && withinBase(host, p.slice(2));
  return host === p;
}

/** Whether a pattern covers a host at all, public suffixes or not: for deny lists. */
export function coversHost(host: string, pattern: string): boolean {
  const p = cachedPattern(pattern);
  if (p === null) return false;
  if (p === "*") return true;
  if (p.startsWith("*.")) return host.endsWith(p.slice(1));
  return host === p;
}

export function firstMatch(host: string, patterns: readonly string[]): string | undefined {
  return patterns.find((p) => matchesPattern(host, p));
}

/** The first deny pattern covering a host. */
export function firstDenied(host: string, deny: readonly string[]): string | undefined {
  return deny.find((p) => coversHost(host, p));
}

export interface DomainDecision {
  allowed: boolean;
  /** Canonical host the decision is about (null when the host was invalid). */
  host: string | null;
  /** The pattern that decided, when one did. */
  rule?: string;
  /** For people: why. */
  reason: string;
}

/** Deny wins over allow; anything not allowed is denied. */
export function decide(opts: {
  host: string;
  allow: readonly string[];
  deny: readonly string[];
}): DomainDecision {
  const host = normalizeHost(opts.host);
  if (!host) {
    return { allowed: false, host: null, reason: `"${opts.host}" is not a valid host name` };
  }
  const denied = firstDenied(host, opts.deny);
  if (denied) {
    return { allowed: false, host, rule: denied, reason: `${host} matches deny rule "${denied}"` };
  }
  const allowed = firstMatch(host, opts.allow);
  if (allowed) {
    return {
      allowed: true,
      host,
      rule: allowed,
      reason: `${host} matches allow rule "${allowed}"`,
    };
  }
  const stopped = opts.allow.find((p) => coversHost(host, p));
  if (stopped) {
    return {
      allowed: false,
      host,
      reason: `${host} is under the public suffix ${publicSuffixOf(host)}, where anyone can register a name, and "${stopped}" does not reach across it; allow ${host} by its own name`,
    };
  }
  return { allowed: false, host, reason: `${host} is not in the agent's network allow list` };
}
