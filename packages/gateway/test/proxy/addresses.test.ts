import { describe, expect, it } from "vitest";
import { parseIpLiteral } from "../../src/domain/ip-literal.ts";
import {
  cachingResolver,
  checkAddress,
  type Resolver,
  validateCidrs,
  vetHost,
} from "../../src/proxy/addresses.ts";
import { LOOPBACK_V4_SPELLINGS, LOOPBACK_V6_SPELLINGS } from "./spellings.ts";

describe("IP literal parsing", () => {
  it("reads every form a URL or resolver might carry", () => {
    for (const form of [...LOOPBACK_V4_SPELLINGS, "127.0.0.1."]) {
      expect(parseIpLiteral(form)?.toString(), form).toBe("127.0.0.1");
    }
    for (const form of LOOPBACK_V6_SPELLINGS) {
      const ip = parseIpLiteral(form);
      expect(ip, form).not.toBeNull();
      expect(checkAddress(ip!, []).ok, form).toBe(false);
    }
    expect(parseIpLiteral("[::1]")?.toString()).toBe("::1");
    expect(parseIpLiteral("::ffff:127.0.0.1")?.toString()).toBe("::ffff:7f00:1");
    expect(parseIpLiteral("example.com")).toBeNull();
    expect(parseIpLiteral("cafe.be")).toBeNull();
    expect(parseIpLiteral("1.2.3.4.5")).toBeNull();
  });
});

describe("address guard", () => {
  const refused = [
    "127.0.0.1",
    "127.0.0.2",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.1.1",
    "169.254.169.254",
    "169.254.170.2",
    "100.64.0.1",
    "100.100.100.200",
    "168.63.129.16",
    "0.0.0.0",
    "0.1.2.3",
    "255.255.255.255",
    "224.0.0.1",
    "240.0.0.1",
    "192.0.2.1",
    "198.18.0.1",
    "::",
    "::1",
    "fe80::1",
    "fe80::1%eth0",
    "fc00::1",
    "fd12:3456::1",
    "fd00:ec2::254",
    "ff02::1",
    "fec0::1",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::7f00:1",
    "::a00:1",
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::1",
    "2002:7f00:1::1",
    "2002:c0a8:101::1",
    "2001:0:4136:e378:8000:63bf:80ff:fffe", // Teredo, client 127.0.0.1
    "2001:0:7f00:1::1", // Teredo, server 127.0.0.1
    "2001:db8::1",
    "100::1",
  ];
  it.each(refused)("refuses %s", (address) => {
    const check = checkAddress(address, []);
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.reason).toMatch(/ is /);
  });

  const publicAddresses = [
    "1.1.1.1",
    "8.8.8.8",
    "140.82.112.3",
    "2606:4700::1111",
    "::ffff:1.1.1.1",
    "64:ff9b::101:101",
    "2002:101:101::1",
  ];
  it.each(publicAddresses)("allows public %s", (address) => {
    expect(checkAddress(address, [])).toEqual({ ok: true });
  });

  it("names what it refused", () => {
    expect(checkAddress("169.254.169.254", [])).toEqual({
      ok: false,
      reason: "169.254.169.254 is a cloud metadata endpoint",
    });
    expect(checkAddress("::ffff:10.0.0.1", [])).toEqual({
      ok: false,
      reason: "10.0.0.1 is a private network address (RFC 1918), written as IPv4-mapped IPv6",
    });
    expect(checkAddress("2002:7f00:1::1", [])).toMatchObject({
      reason: expect.stringContaining("embedded in 6to4"),
    });
  });

  it("lets an operator re-allow ranges, but metadata only by exact address", () => {
    expect(checkAddress("10.1.2.3", ["10.0.0.0/8"]).ok).toBe(true);
    expect(checkAddress("::ffff:10.1.2.3", ["10.0.0.0/8"]).ok).toBe(true);
    expect(checkAddress("10.1.2.3", ["10.1.2.4"]).ok).toBe(false);
    expect(checkAddress("fd12::5", ["fd12::/16"]).ok).toBe(true);
    expect(checkAddress("169.254.169.254", ["169.254.0.0/16"]).ok).toBe(false);
    expect(checkAddress("169.254.169.254", ["0.0.0.0/0"]).ok).toBe(false);
    expect(checkAddress("169.254.169.254", ["169.254.169.254/32"]).ok).toBe(true);
    expect(checkAddress("127.0.0.1", ["not-a-cidr"]).ok).toBe(false);
    expect(() => validateCidrs(["10.0.0.0/8", "nope"])).toThrow(/"nope" is not a CIDR/);
  });

  it("resolves once and refuses when any answer is private", async () => {
    const calls: string[] = [];
    const resolver: Resolver = async (host) => {
      calls.push(host);
      return [
        { address: "93.184.216.34", family: 4 },
        { address: "10.0.0.7", family: 4 },
      ];
    };
    const vet = await vetHost("mixed.example", { allowPrivateRanges: [], resolver });
    expect(vet).toEqual({
      ok: false,
      host: "mixed.example",
      status: 403,
      reason: "mixed.example resolves to 10.0.0.7 is a private network address (RFC 1918)",
    });
    expect(calls).toEqual(["mixed.example"]);
  });

  it("returns the vetted answers to connect to", async () => {
    const resolver: Resolver = async () => [
      { address: "::ffff:93.184.216.34", family: 6 },
      { address: "2606:2800:220:1::1", family: 6 },
      { address: "93.184.216.34", family: 4 },
    ];
    expect(await vetHost("example.com", { allowPrivateRanges: [], resolver })).toEqual({
      ok: true,
      host: "example.com",
      addresses: [
        { address: "93.184.216.34", family: 4 },
        { address: "2606:2800:220:1::1", family: 6 },
      ],
    });
  });

  it("never resolves literals or localhost", async () => {
    const resolver: Resolver = async () => {
      throw new Error("must not be called");
    };
    expect(await vetHost("1.1.1.1", { allowPrivateRanges: [], resolver })).toMatchObject({
      ok: true,
    });
    expect(await vetHost("localhost", { allowPrivateRanges: [], resolver })).toMatchObject({
      ok: false,
      status: 403,
    });
    expect(await vetHost("api.localhost", { allowPrivateRanges: [], resolver })).toMatchObject({
      ok: false,
      status: 403,
    });
  });

  it("reports resolution failures as 502", async () => {
    const resolver: Resolver = async () => {
      throw Object.assign(new Error("nope"), { code: "ENOTFOUND" });
    };
    expect(await vetHost("missing.example", { allowPrivateRanges: [], resolver })).toEqual({
      ok: false,
      host: "missing.example",
      status: 502,
      reason: "cannot resolve missing.example (ENOTFOUND)",
    });
    expect(
      await vetHost("empty.example", { allowPrivateRanges: [], resolver: async () => [] }),
    ).toMatchObject({ status: 502 });
  });
});

describe("caching resolver", () => {
  it("caches answers (not failures) and still lets every request vet them", async () => {
    let calls = 0;
    const inner: Resolver = async (host) => {
      calls++;
      if (host === "fail.example") throw Object.assign(new Error("nope"), { code: "ENOTFOUND" });
      return [{ address: "10.0.0.9", family: 4 }];
    };
    const cached = cachingResolver(inner, { ttlMs: 60_000 });
    expect(
      await vetHost("a.example", { allowPrivateRanges: ["10.0.0.0/8"], resolver: cached }),
    ).toMatchObject({ ok: true });
    // Same cached answer, another sandbox's policy: refused.
    expect(await vetHost("a.example", { allowPrivateRanges: [], resolver: cached })).toMatchObject({
      ok: false,
      status: 403,
    });
    expect(calls).toBe(1);
    await expect(cached("fail.example")).rejects.toThrow();
    await expect(cached("fail.example")).rejects.toThrow();
    expect(calls).toBe(3);
    const expired = cachingResolver(inner, { ttlMs: -1 });
    await expired("b.example");
    await expired("b.example");
    expect(calls).toBe(5);
  });
});
