import { describe, expect, it } from "vitest";
import { identifySandbox } from "../../src/proxy/identity.ts";

/** Which sandbox a request speaks for: fixed by a per-sandbox socket, named on a pool's. */

const pool = { identity: { kind: "pool" as const, poolId: "p1" } };
const basic = (user: string) => `Basic ${Buffer.from(`${user}:`).toString("base64")}`;

describe("identifySandbox", () => {
  it("a per-sandbox socket is its sandbox, whatever the request names", () => {
    const who = { identity: { kind: "sandbox" as const, sandboxId: "sb_a" } };
    expect(identifySandbox(who, { "x-lobu-sandbox": "sb_b" }, false)).toEqual({
      ok: true,
      sandboxId: "sb_a",
    });
  });

  it("a pool's request names its sandbox in x-lobu-sandbox, or in Basic credentials on CONNECT", () => {
    expect(identifySandbox(pool, { "x-lobu-sandbox": "sb_a" }, false)).toEqual({
      ok: true,
      sandboxId: "sb_a",
    });
    expect(identifySandbox(pool, { "proxy-authorization": basic("sb_b") }, true)).toEqual({
      ok: true,
      sandboxId: "sb_b",
    });
  });

  it("asks (407) for a name that is missing or not a sandbox id, saying how to send it", () => {
    const plain = identifySandbox(pool, {}, false);
    expect(plain).toMatchObject({ ok: false, refusal: { status: 407, kind: "identity" } });
    if (!plain.ok) expect(plain.refusal.reason).toContain("the x-lobu-sandbox header");
    const tunnel = identifySandbox(pool, { "proxy-authorization": basic("../etc") }, true);
    expect(tunnel).toMatchObject({ ok: false, refusal: { status: 407 } });
    if (!tunnel.ok) expect(tunnel.refusal.reason).toContain("Proxy-Authorization: Basic");
  });

  it("refuses (403) a sandbox that is not placed on this pool", () => {
    const who = {
      ...pool,
      poolMember: (poolId: string, id: string) => poolId === "p1" && id === "sb_a",
    };
    expect(identifySandbox(who, { "x-lobu-sandbox": "sb_a" }, false)).toMatchObject({ ok: true });
    expect(identifySandbox(who, { "x-lobu-sandbox": "sb_z" }, false)).toEqual({
      ok: false,
      refusal: {
        status: 403,
        kind: "identity",
        host: "",
        reason: "sandbox sb_z is not placed on pool p1",
      },
    });
  });
});
