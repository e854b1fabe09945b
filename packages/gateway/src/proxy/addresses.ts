import { lookup } from "node:dns/promises";
import ipaddr from "ipaddr.js";
import { type IpAddress, parseIpLiteral } from "../domain/ip-literal.ts";

/**
 * Address guard (SSRF): a sandbox may only reach public unicast addresses, unless
 * the operator lists a range in `allow_private_ranges`. A host is resolved once;
 * if ANY answer is refused the host is refused, and the caller connects to the
 * vetted answer itself, never to the name again (so DNS rebinding cannot swap in
 * a private address between the check and the connect).
 */

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to every address it has, in the order to try them. */
export type Resolver = (host: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = async (host) => {
  const answers = await lookup(host, { all: true, order: "verbatim" });
  return answers.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

/**
 * Wrap a resolver with a small cache of answers (not verdicts: every request still
 * vets the cached addresses against its own sandbox's policy, and connects to
 * exactly what was vetted). Useful with the system resolver, which has no cache.
 */
export function cachingResolver(
  inner: Resolver,
  opts: { ttlMs?: number; max?: number } = {},
): Resolver {
  const ttl = opts.ttlMs ?? 30_000;
  const max = opts.max ?? 1_000;
  const cache = new Map<string, { at: number; answer: Promise<ResolvedAddress[]> }>();
  return (host) => {
    const now = Date.now();
    const hit = cache.get(host);
    if (hit && now - hit.at < ttl) return hit.answer;
    const answer = inner(host);
    cache.set(host, { at: now, answer });
    answer.catch(() => cache.delete(host));
    if (cache.size > max) cache.delete(cache.keys().next().value!);
    return answer;
  };
}

/** Cloud instance-metadata endpoints: credentials live there. */
const METADATA = new Set([
  "169.254.169.254", // AWS, GCP, Azure, OpenStack, DigitalOcean...
  "169.254.170.2", // AWS ECS task credentials
  "168.63.129.16", // Azure wire server (public address!)
  "100.100.100.200", // Alibaba Cloud
  "fd00:ec2::254", // AWS IPv6
]);

const V4_REASONS: Record<string, string> = {
  unspecified: "an unspecified address (0.0.0.0/8)",
  broadcast: "the broadcast address",
  multicast: "a multicast address",
  linkLocal: "a link-local address (169.254.0.0/16)",
  loopback: "a loopback address (127.0.0.0/8)",
  carrierGradeNat: "a shared/CGNAT address (100.64.0.0/10)",
  private: "a private network address (RFC 1918)",
  reserved: "a reserved or documentation address",
  as112: "a special-purpose address (AS112)",
  amt: "a special-purpose address (AMT)",
};

const V6_REASONS: Record<string, string> = {
  unspecified: "the unspecified address (::)",
  linkLocal: "a link-local address (fe80::/10)",
  multicast: "a multicast address",
  loopback: "the loopback address (::1)",
  uniqueLocal: "a unique-local address (fc00::/7)",
  deprecatedSiteLocal: "a site-local address (fec0::/10)",
};

const GLOBAL_UNICAST = ipaddr.parseCIDR("2000::/3");

function v4FromBits(parts: number[], firstPart: number): ipaddr.IPv4 {
  const hi = parts[firstPart]!;
  const lo = parts[firstPart + 1]!;
  return new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
}

/**
 * IPv4 addresses an IPv6 address carries and that a router may deliver to:
 * IPv4-compatible, NAT64 (RFC 6052/6145), 6to4 and both Teredo ends.
 */
function embeddedV4(ip: ipaddr.IPv6): { via: string; v4: ipaddr.IPv4[] } | null {
  const p = ip.parts;
  switch (ip.range()) {
    case "rfc6145":
      return { via: "IPv4-translated IPv6", v4: [v4FromBits(p, 6)] };
    case "rfc6052":
      return { via: "NAT64 IPv6", v4: [v4FromBits(p, 6)] };
    case "6to4":
      return { via: "6to4 IPv6", v4: [v4FromBits(p, 1)] };
    case "teredo": {
      const client = v4FromBits(
        p.map((x) => x ^ 0xffff),
        6,
      );
      return { via: "Teredo IPv6", v4: [v4FromBits(p, 2), client] };
    }
  }
  // IPv4-compatible (::a.b.c.d, deprecated but still routed by some stacks).
  if (p.slice(0, 6).every((x) => x === 0) && ip.range() === "unicast") {
    return { via: "IPv4-compatible IPv6", v4: [v4FromBits(p, 6)] };
  }
  return null;
}

/** Why an address is not public, or null when it is an ordinary public address. */
export function specialPurpose(ip: IpAddress): string | null {
  if (METADATA.has(ip.toString())) return "a cloud metadata endpoint";
  if (ip.kind() === "ipv4") {
    const range = ip.range();
    return range === "unicast"
      ? null
      : (V4_REASONS[range] ?? `a special-purpose address (${range})`);
  }
  const v6 = ip as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) {
    const inner = specialPurpose(v6.toIPv4Address());
    return inner && `${inner}, written as IPv4-mapped IPv6`;
  }
  if (v6.range() === "rfc6052" && v6.match(ipaddr.parseCIDR("64:ff9b:1::/48"))) {
    return "a local-use NAT64 address (64:ff9b:1::/48)";
  }
  const embedded = embeddedV4(v6);
  if (embedded) {
    for (const v4 of embedded.v4) {
      const inner = specialPurpose(v4);
      if (inner) return `${inner} (${v4.toString()}) embedded in ${embedded.via}`;
    }
    return null;
  }
  const range = v6.range();
  if (range !== "unicast") return V6_REASONS[range] ?? `a special-purpose address (${range})`;
  if (!v6.match(GLOBAL_UNICAST)) return "not a global unicast address";
  return null;
}

type Cidr = [IpAddress, number];
const cidrCache = new Map<string, Cidr | null>();

/** Parse an `allow_private_ranges` entry (`10.0.0.0/8`, `fd12::/16` or a bare address). */
export function parseCidr(text: string): Cidr | null {
  const cached = cidrCache.get(text);
  if (cached !== undefined) return cached;
  let parsed: Cidr | null = null;
  try {
    if (text.includes("/")) parsed = ipaddr.parseCIDR(text.trim());
    else {
      const ip = ipaddr.parse(text.trim());
      parsed = [ip, ip.kind() === "ipv4" ? 32 : 128];
    }
  } catch {
    parsed = null;
  }
  if (cidrCache.size > 10_000) cidrCache.clear();
  cidrCache.set(text, parsed);
  return parsed;
}

/** Throws with a message naming the bad entry (for config validation). */
export function validateCidrs(ranges: readonly string[]): void {
  for (const r of ranges) {
    if (!parseCidr(r)) {
      throw new Error(`allow_private_ranges: "${r}" is not a CIDR range like 10.0.0.0/8`);
    }
  }
}

function inRange(ip: IpAddress, cidr: Cidr): boolean {
  return ip.kind() === cidr[0].kind() && ip.match(cidr as [never, number]);
}

/** Canonical form used for connecting: IPv4-mapped IPv6 becomes plain IPv4. */
function canonical(ip: IpAddress): IpAddress {
  return ip.kind() === "ipv6" && (ip as ipaddr.IPv6).isIPv4MappedAddress()
    ? (ip as ipaddr.IPv6).toIPv4Address()
    : ip;
}

export type AddressCheck = { ok: true } | { ok: false; reason: string };

/**
 * Whether one address may be reached. Operator ranges re-allow special addresses,
 * except metadata endpoints, which need an entry naming exactly that address.
 */
export function checkAddress(
  address: string | IpAddress,
  allowPrivateRanges: readonly string[],
): AddressCheck {
  if (typeof address !== "string") return checkParsed(address, allowPrivateRanges);
  // Requests in a tunnel re-check its addresses each time: same inputs, same verdict.
  const key = `${address}|${allowPrivateRanges.join(",")}`;
  const hit = checked.get(key);
  if (hit) return hit;
  const check = checkParsed(address, allowPrivateRanges);
  if (checked.size >= VETTED_MAX) checked.delete(checked.keys().next().value!);
  checked.set(key, check);
  return check;
}

const checked = new Map<string, AddressCheck>();

function checkParsed(
  address: string | IpAddress,
  allowPrivateRanges: readonly string[],
): AddressCheck {
  let ip: IpAddress;
  try {
    ip = typeof address === "string" ? ipaddr.parse(address) : address;
  } catch {
    return { ok: false, reason: `${String(address)} is not an IP address` };
  }
  const reason = specialPurpose(ip);
  if (!reason) return { ok: true };
  const c = canonical(ip);
  const isMetadata = reason.startsWith("a cloud metadata endpoint");
  for (const r of allowPrivateRanges) {
    const cidr = parseCidr(r);
    if (!cidr || !inRange(c, cidr)) continue;
    if (isMetadata && cidr[1] !== (c.kind() === "ipv4" ? 32 : 128)) continue;
    return { ok: true };
  }
  return { ok: false, reason: `${c.toString()} is ${reason}` };
}

export type VetResult =
  | {
      ok: true;
      host: string;
      /** Every answer, all allowed, in the order to try; connect to these, never to `host`. */
      addresses: ResolvedAddress[];
    }
  | {
      ok: false;
      host: string;
      /** 403 for a refused address, 502 when the name does not resolve. */
      status: 403 | 502;
      reason: string;
    };

export interface VetOptions {
  allowPrivateRanges: readonly string[];
  resolver?: Resolver;
  /** Give up on resolution after this long (default 10 s). */
  timeoutMs?: number;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Resolve `host` once and vet every answer. `host` must be canonical (see normalizeHost). */
export async function vetHost(host: string, opts: VetOptions): Promise<VetResult> {
  const literal = parseIpLiteral(host);
  let answers: IpAddress[];
  if (literal) {
    answers = [literal];
  } else if (host === "localhost" || host.endsWith(".localhost")) {
    // RFC 6761: always loopback, whatever a resolver says.
    const ok = ["127.0.0.1", "::1"].every((a) => checkAddress(a, opts.allowPrivateRanges).ok);
    if (!ok) return { ok: false, host, status: 403, reason: `${host} is a loopback name` };
    answers = [ipaddr.parse("127.0.0.1")];
  } else {
    let resolved: ResolvedAddress[];
    try {
      resolved = await withTimeout(
        (opts.resolver ?? systemResolver)(host),
        opts.timeoutMs ?? 10_000,
        `resolving ${host}`,
      );
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return {
        ok: false,
        host,
        status: 502,
        reason: `cannot resolve ${host}${code ? ` (${code})` : `: ${(err as Error).message}`}`,
      };
    }
    // The same answer vetted for the same ranges gives the same verdict: skip parsing it again.
    const memoKey = `${host}|${resolved.map((r) => r.address).join(",")}|${opts.allowPrivateRanges.join(",")}`;
    const memo = vetted.get(memoKey);
    if (memo) return memo;
    const result = vetAnswers(host, resolved, opts.allowPrivateRanges);
    if (vetted.size >= VETTED_MAX) vetted.delete(vetted.keys().next().value!);
    vetted.set(memoKey, result);
    return result;
  }
  return vetParsed(host, answers, literal !== null, opts.allowPrivateRanges);
}

/** Verdicts on resolved answers, by host, addresses and ranges (all in the key). */
const vetted = new Map<string, VetResult>();
const VETTED_MAX = 4096;

function vetAnswers(
  host: string,
  resolved: readonly ResolvedAddress[],
  allowPrivateRanges: readonly string[],
): VetResult {
  const answers: IpAddress[] = [];
  for (const r of resolved) {
    try {
      answers.push(ipaddr.parse(r.address));
    } catch {
      return { ok: false, host, status: 403, reason: `${host} resolved to an invalid address` };
    }
  }
  if (answers.length === 0) {
    return { ok: false, host, status: 502, reason: `${host} has no addresses` };
  }
  return vetParsed(host, answers, false, allowPrivateRanges);
}

function vetParsed(
  host: string,
  answers: readonly IpAddress[],
  literal: boolean,
  allowPrivateRanges: readonly string[],
): VetResult {
  for (const ip of answers) {
    const check = checkAddress(ip, allowPrivateRanges);
    if (!check.ok) {
      const subject = literal ? check.reason : `${host} resolves to ${check.reason}`;
      return { ok: false, host, status: 403, reason: subject };
    }
  }
  const seen = new Set<string>();
  const addresses: ResolvedAddress[] = [];
  for (const ip of answers.map(canonical)) {
    const address = ip.toString();
    if (seen.has(address)) continue;
    seen.add(address);
    addresses.push(Object.freeze({ address, family: ip.kind() === "ipv4" ? 4 : 6 }));
  }
  // Frozen: a verdict may be handed to many requests (see vetted).
  return { ok: true, host, addresses: Object.freeze(addresses) as ResolvedAddress[] };
}
