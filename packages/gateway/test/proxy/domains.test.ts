import { describe, expect, it } from "vitest";
import {
  decide,
  matchesPattern,
  normalizeHost,
  normalizePattern,
} from "../../src/domain/host-patterns.ts";

describe("domain policy", () => {
  it("normalizes hosts: case, trailing dot, IDN, IP literals", () => {
    expect(normalizeHost("API.Example.COM.")).toBe("api.example.com");
    expect(normalizeHost("bücher.example")).toBe("xn--bcher-kva.example");
    expect(normalizeHost("[::1]")).toBe("::1");
    expect(normalizeHost("0x7f.1")).toBe("127.0.0.1");
    expect(normalizeHost("2130706433")).toBe("127.0.0.1");
    expect(normalizeHost("")).toBeNull();
    expect(normalizeHost("a b.com")).toBeNull();
    expect(normalizeHost("a..b.com")).toBeNull();
    expect(normalizeHost("evil.com:80")).toBeNull();
  });

  it("matches exact names, subdomains (not the apex) and everything", () => {
    expect(matchesPattern("example.com", "example.com")).toBe(true);
    expect(matchesPattern("www.example.com", "example.com")).toBe(false);
    expect(matchesPattern("api.example.com", "*.example.com")).toBe(true);
    expect(matchesPattern("a.b.example.com", "*.example.com")).toBe(true);
    expect(matchesPattern("example.com", "*.example.com")).toBe(false);
    expect(matchesPattern("notexample.com", "*.example.com")).toBe(false);
    expect(matchesPattern("example.com.evil.net", "example.com")).toBe(false);
    expect(matchesPattern("anything.at.all", "*")).toBe(true);
    expect(matchesPattern("api.example.com", "*.EXAMPLE.com.")).toBe(true);
    expect(matchesPattern("xn--bcher-kva.example", "bücher.example")).toBe(true);
    expect(normalizePattern("*.Bücher.Example")).toBe("*.xn--bcher-kva.example");
    expect(() => normalizePattern("*.*.example.com")).toThrow(/not a domain pattern/);
  });

  it("decides with deny winning and says why", () => {
    const allow = ["*.github.com", "github.com"];
    const deny = ["gist.github.com"];
    expect(decide({ host: "api.github.com", allow, deny })).toEqual({
      allowed: true,
      host: "api.github.com",
      rule: "*.github.com",
      reason: 'api.github.com matches allow rule "*.github.com"',
    });
    expect(decide({ host: "GIST.github.com.", allow, deny })).toMatchObject({
      allowed: false,
      rule: "gist.github.com",
      reason: 'gist.github.com matches deny rule "gist.github.com"',
    });
    expect(decide({ host: "evil.com", allow, deny })).toMatchObject({
      allowed: false,
      reason: "evil.com is not in the agent's network allow list",
    });
    expect(decide({ host: "x", allow: ["*"], deny: ["*"] }).allowed).toBe(false);
    expect(decide({ host: "bad host", allow: ["*"], deny: [] })).toMatchObject({
      allowed: false,
      host: null,
    });
  });
});
