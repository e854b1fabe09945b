import { parse } from "tldts";
import { parseIpLiteral } from "./ip-literal.ts";

/**
 * Public suffixes (Public Suffix List, ICANN and private sections, as bundled
 * by `tldts`): names under which anyone can register their own site — `co.uk`,
 * `github.io`, `s3.amazonaws.com`, `herokuapp.com`. A domain pattern is about
 * one owner's hosts; one that names a public suffix, or a wildcard over one,
 * reaches every stranger who registered a name there.
 */

const OPTIONS = {
  allowPrivateDomains: true,
  extractHostname: false,
  validateHostname: false,
  detectIp: false,
} as const;

/** The public suffix of a canonical host name (for IP literals: null). */
const suffixCache = new Map<string, string | null>();
export function publicSuffixOf(host: string): string | null {
  let suffix = suffixCache.get(host);
  if (suffix === undefined) {
    suffix = parseIpLiteral(host) ? null : (parse(host, OPTIONS).publicSuffix ?? null);
    if (suffixCache.size >= 10_000) suffixCache.clear();
    suffixCache.set(host, suffix);
  }
  return suffix;
}

/** Whether a canonical name is itself on the list (a bare unlisted TLD is not: see below). */
export function isListedPublicSuffix(name: string): boolean {
  if (parseIpLiteral(name)) return false;
  const r = parse(name, OPTIONS);
  // Unlisted single labels (`internal`, `test`, `lan`) match only the list's
  // default rule; operators use them for internal names, so they are not refused here.
  return r.publicSuffix === name && (r.isIcann === true || r.isPrivate === true);
}

/**
 * Why a canonical pattern (normalizePattern) names a public suffix, or null
 * when it does not. `*` is not judged here: it is "everything", for operators.
 */
export function publicSuffixProblem(pattern: string): string | null {
  if (pattern === "*") return null;
  const wildcard = pattern.startsWith("*.");
  const base = wildcard ? pattern.slice(2) : pattern;
  if (!isListedPublicSuffix(base)) return null;
  return wildcard
    ? `"${pattern}" would allow every site under ${base}, a public suffix where anyone can register a name`
    : `"${pattern}" is a public suffix where anyone can register a name, not one owner's host`;
}

/**
 * Whether a wildcard's base reaches `host` without crossing a public suffix
 * below the base: `*.amazonaws.com` covers `sts.amazonaws.com` but not
 * `bucket.s3.amazonaws.com`, whose owner registered it under the public suffix
 * `s3.amazonaws.com`. `host` must already end with `.<base>`.
 */
export function withinBase(host: string, base: string): boolean {
  const suffix = publicSuffixOf(host);
  return suffix === null || suffix.length <= base.length;
}
