import { domainToASCII } from "node:url";
import { parseIpLiteral } from "./addresses.ts";

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

/** Whether a canonical host matches a pattern (normalized on the fly). */
export function matchesPattern(host: string, pattern: string): boolean {
  const p = cachedPattern(pattern);
  if (p === null) return false;
  if (p === "*") return true;
  if (p.startsWith("*.")) return host.endsWith(p.slice(1));
  return host === p;
}

export function firstMatch(host: string, patterns: readonly string[]): string | undefined {
  return patterns.find((p) => matchesPattern(host, p));
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
  const denied = firstMatch(host, opts.deny);
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
  return { allowed: false, host, reason: `${host} is not in the agent's network allow list` };
}
