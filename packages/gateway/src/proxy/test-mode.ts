import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import { LobuError } from "@lobu/core";
import ipaddr from "ipaddr.js";
import { normalizeHost } from "../domain/host-patterns.ts";
import type { ResolvedAddress, Resolver } from "./addresses.ts";

/**
 * TEST-ONLY hooks for end-to-end tests of the egress proxy, which run offline
 * against fake upstreams on 127.0.0.1:
 *
 * - `LOBU_TEST_RESOLVE="api.allowed.test=127.0.0.1,dual.test=10.0.0.1|::1"`: fixed
 *   DNS answers for these names (others use the system resolver). Answers are
 *   still vetted by the address guard and the domain policy like any other, so a
 *   name mapped to 127.0.0.1 is refused unless `allow_private_ranges` opts in.
 * - `LOBU_TEST_UPSTREAM_CA=<pem file>`: one more CA trusted for upstream TLS (the
 *   normal public roots stay trusted). Never trusted by sandboxes.
 *
 * The gateway refuses to start with either set unless `LOBU_TEST_MODE=1`, and
 * logs a warning when they are in use. Neither changes what a sandbox may reach.
 */

export const TEST_MODE_ENV = "LOBU_TEST_MODE";
export const TEST_RESOLVE_ENV = "LOBU_TEST_RESOLVE";
export const TEST_UPSTREAM_CA_ENV = "LOBU_TEST_UPSTREAM_CA";

export interface EgressTestHooks {
  /** Canonical host → fixed answers. */
  resolve?: Map<string, ResolvedAddress[]>;
  /** CAs for upstream TLS: Node's public roots plus the test CA. */
  upstreamCa?: string[];
}

function testModeError(message: string, hint: string): LobuError {
  return new LobuError("test_mode_invalid", message, { status: 500, hint });
}

/** Parse `name=addr|addr,name=addr`. Throws naming the bad entry. */
export function parseTestResolve(text: string): Map<string, ResolvedAddress[]> {
  const map = new Map<string, ResolvedAddress[]>();
  for (const entry of text.split(",")) {
    const item = entry.trim();
    if (!item) continue;
    const eq = item.indexOf("=");
    const host = eq > 0 ? normalizeHost(item.slice(0, eq)) : null;
    const answers = eq > 0 ? item.slice(eq + 1).split("|") : [];
    const addresses: ResolvedAddress[] = [];
    for (const a of answers) {
      if (!ipaddr.isValid(a.trim())) {
        addresses.length = 0;
        break;
      }
      const ip = ipaddr.parse(a.trim());
      addresses.push({ address: ip.toString(), family: ip.kind() === "ipv4" ? 4 : 6 });
    }
    if (!host || addresses.length === 0) {
      throw testModeError(
        `${TEST_RESOLVE_ENV}: "${item}" is not name=address[|address...]`,
        `Example: ${TEST_RESOLVE_ENV}="api.allowed.test=127.0.0.1,dual.test=10.0.0.1|::1"`,
      );
    }
    map.set(host, addresses);
  }
  return map;
}

/**
 * The test hooks set in `env`, or null when there are none. Throws when a hook is
 * set without `LOBU_TEST_MODE=1`: a stray variable must never change production.
 */
export function egressTestHooks(env: NodeJS.ProcessEnv): EgressTestHooks | null {
  const resolve = env[TEST_RESOLVE_ENV];
  const ca = env[TEST_UPSTREAM_CA_ENV];
  if (!resolve && !ca) return null;
  if (env[TEST_MODE_ENV] !== "1") {
    const set = [resolve && TEST_RESOLVE_ENV, ca && TEST_UPSTREAM_CA_ENV].filter(Boolean);
    throw testModeError(
      `${set.join(" and ")} ${set.length > 1 ? "are" : "is"} test-only and ${TEST_MODE_ENV} is not 1`,
      `Unset ${set.join(" and ")} (they change how the egress proxy resolves names and which upstream certificates it trusts, and exist for Lobu's own tests).`,
    );
  }
  const hooks: EgressTestHooks = {};
  if (resolve) hooks.resolve = parseTestResolve(resolve);
  if (ca) {
    let pem: string;
    try {
      pem = readFileSync(ca, "utf8");
    } catch (err) {
      throw testModeError(
        `${TEST_UPSTREAM_CA_ENV}: cannot read ${ca}: ${(err as Error).message}`,
        "Point it at a PEM file.",
      );
    }
    hooks.upstreamCa = [...rootCertificates, pem];
  }
  return hooks;
}

/** Fixed answers for mapped names, `fallback` for the rest. */
export function testResolver(map: Map<string, ResolvedAddress[]>, fallback: Resolver): Resolver {
  return async (host) => {
    const fixed = map.get(host);
    return fixed ? fixed.map((a) => ({ ...a })) : fallback(host);
  };
}
