import { createLogger } from "@lobu/core";
import { describe, expect, it } from "vitest";
import type { ResolvedAddress, Resolver } from "../../src/proxy/addresses.ts";
import {
  authorizeHost,
  decideHost,
  type EgressPolicy,
  loadAgent,
  loadPolicy,
  refuseInTunnel,
} from "../../src/proxy/policy.ts";

/**
 * The request policy decision on its own: domain policy, then the address guard,
 * from one resolution. DNS is the only remote service here, answered from a map.
 */

const v4 = (address: string): ResolvedAddress => ({ address, family: 4 });

const dns = new Map<string, ResolvedAddress[]>([
  ["api.example.com", [v4("93.184.216.34")]],
  ["intranet.example.com", [v4("10.0.0.7")]],
  ["mine.example.org", [v4("10.0.0.8")]],
]);
const resolver: Resolver = async (host) => {
  const answer = dns.get(host);
  if (!answer)
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
  return answer;
};

const policy: EgressPolicy = {
  agentId: "helper",
  allow: ["*.example.com"],
  deny: ["secret.example.com"],
  allowPrivateRanges: ["10.0.0.0/8"],
  userAllow: ["mine.example.org"],
};

describe("decideHost", () => {
  it("allows a host the policy allows, with its canonical name and the vetted addresses", async () => {
    expect(await decideHost(policy, "API.Example.com.", resolver)).toEqual({
      ok: true,
      host: "api.example.com",
      addresses: [v4("93.184.216.34")],
    });
  });

  it("refuses by deny rule, by missing allow rule and by an invalid name, each with its kind", async () => {
    const denied = await decideHost(policy, "secret.example.com", resolver);
    expect(denied).toMatchObject({
      ok: false,
      refusal: { status: 403, kind: "denied_rule", host: "secret.example.com", agentId: "helper" },
    });
    const other = await decideHost(policy, "example.net", resolver);
    expect(other).toMatchObject({
      ok: false,
      refusal: { status: 403, kind: "not_allowed", host: "example.net", agentId: "helper" },
    });
    const invalid = await decideHost(policy, "a..b", resolver);
    expect(invalid).toMatchObject({
      ok: false,
      refusal: { status: 400, kind: "bad_request", host: "a..b" },
    });
  });

  it("refuses a guarded literal as a private address, not as a name to allow", async () => {
    const open: EgressPolicy = { agentId: "a", allow: ["*"], deny: [], allowPrivateRanges: [] };
    for (const host of ["127.0.0.1", "localhost", "x.localhost", "[::1]"]) {
      const d = await decideHost(open, host, resolver);
      expect(d.ok, host).toBe(false);
      if (!d.ok) expect(d.refusal, host).toMatchObject({ status: 403, kind: "private_address" });
    }
  });

  it("applies the operator's private ranges only to hosts the operator allowed, and says so", async () => {
    expect(await decideHost(policy, "intranet.example.com", resolver)).toMatchObject({ ok: true });
    const user = await decideHost(policy, "mine.example.org", resolver);
    expect(user.ok).toBe(false);
    if (user.ok) return;
    expect(user.refusal).toMatchObject({ status: 403, kind: "private_address" });
    expect(user.refusal.reason).toContain(
      "allow_private_ranges applies only to hosts allowed in lobu.toml, and mine.example.org is allowed only from the settings page",
    );
  });

  it("reports a name that does not resolve as an upstream failure", async () => {
    const d = await decideHost(policy, "gone.example.com", resolver);
    expect(d).toMatchObject({ ok: false, refusal: { status: 502, kind: "upstream" } });
  });
});

describe("loadPolicy", () => {
  it("refuses an unknown sandbox (403) and a failed lookup (502), about the host asked for", async () => {
    const unknown = await loadPolicy({ policyFor: async () => null }, "sb_x", "api.example.com");
    expect(unknown).toEqual({
      ok: false,
      refusal: {
        status: 403,
        kind: "identity",
        host: "api.example.com",
        reason: "unknown sandbox sb_x",
      },
    });
    const lines: string[] = [];
    const logger = createLogger("test", {
      level: "error",
      destination: { write: (l) => lines.push(l) },
    });
    const failed = await loadPolicy(
      {
        policyFor: async () => {
          throw new Error("redis down");
        },
        logger,
      },
      "sb_x",
      "",
    );
    expect(failed).toEqual({
      ok: false,
      refusal: {
        status: 502,
        kind: "upstream",
        host: "",
        reason: "the gateway could not load this sandbox's network policy",
      },
    });
    expect(lines.join("")).toContain("egress policy lookup failed");
  });

  it("loadAgent reads only the identity when the source has one, refused like loadPolicy", async () => {
    const noPolicy = async (): Promise<never> => {
      throw new Error("the whole policy is not needed for an identity");
    };
    expect(
      await loadAgent({ policyFor: noPolicy, agentOf: async () => "support" }, "sb_x", ""),
    ).toEqual({ ok: true, agentId: "support" });
    // Without one, the policy's agent.
    expect(await loadAgent({ policyFor: async () => policy }, "sb_x", "")).toEqual({
      ok: true,
      agentId: policy.agentId,
    });
    expect(await loadAgent({ policyFor: noPolicy, agentOf: async () => null }, "sb_x", "")).toEqual(
      {
        ok: false,
        refusal: { status: 403, kind: "identity", host: "", reason: "unknown sandbox sb_x" },
      },
    );
    const failed = await loadAgent(
      {
        policyFor: noPolicy,
        agentOf: async () => {
          throw new Error("store down");
        },
      },
      "sb_x",
      "",
    );
    expect(failed).toMatchObject({ ok: false, refusal: { status: 502, kind: "upstream" } });
  });

  it("authorizeHost hands back the policy with the decision", async () => {
    const auth = await authorizeHost(
      { policyFor: async () => policy, resolver },
      "sb_x",
      "api.example.com",
    );
    expect(auth).toMatchObject({ ok: true, policy, host: "api.example.com" });
  });
});

describe("refuseInTunnel", () => {
  const tunnel = { host: "api.example.com", addresses: [v4("93.184.216.34")] };

  it("lets a request go on while the policy still allows the host and its vetted addresses", () => {
    expect(refuseInTunnel(policy, tunnel)).toBeNull();
  });

  it("refuses once the policy changed, without resolving again", () => {
    expect(refuseInTunnel({ ...policy, deny: ["api.example.com"] }, tunnel)).toMatchObject({
      status: 403,
      kind: "denied_rule",
    });
    expect(refuseInTunnel({ ...policy, allow: [] }, tunnel)).toMatchObject({
      status: 403,
      kind: "not_allowed",
    });
    const inside = { host: "intranet.example.com", addresses: [v4("10.0.0.7")] };
    expect(refuseInTunnel(policy, inside)).toBeNull();
    expect(refuseInTunnel({ ...policy, allowPrivateRanges: [] }, inside)).toMatchObject({
      status: 403,
      kind: "private_address",
      reason: expect.stringContaining("10.0.0.7"),
    });
  });
});
