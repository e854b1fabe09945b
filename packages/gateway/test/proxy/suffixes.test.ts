import { type LobuConfig, LobuConfig as LobuConfigSchema, LobuError } from "@lobu/core";
import { describe, expect, it } from "vitest";
import { agentPatternProblems, configPatternReport } from "../../src/agents/network-patterns.ts";
import { checkAgentInput } from "../../src/agents/references.ts";
import {
  canonicalPattern,
  decide,
  firstDenied,
  matchesPattern,
} from "../../src/domain/host-patterns.ts";
import { publicSuffixProblem } from "../../src/domain/public-suffixes.ts";
import { userDomain } from "../../src/people/validate.ts";
import { ProviderRegistry } from "../../src/providers/registry.ts";
import { SkillCatalog } from "../../src/skills/catalog.ts";

/**
 * Domain patterns against the Public Suffix List (ICANN and private sections):
 * nobody allows "everyone's sites" by accident — not people from the settings
 * page or a capability grant, not operators without an explicit opt-in — and a
 * wildcard never reaches across a public suffix below its base.
 */

const SUFFIX_PATTERNS = [
  "*.co.uk",
  "co.uk",
  "*.github.io",
  "github.io",
  "*.GitHub.IO.",
  "*.githubusercontent.com",
  "*.s3.amazonaws.com",
  "s3.amazonaws.com",
  "*.herokuapp.com",
  "*.blogspot.com",
  "*.xn--55qx5d.cn",
  "*.公司.cn",
];

describe("people's domains (settings page, capability grants)", () => {
  it("refuses public suffixes and wildcards over them, in every spelling", () => {
    for (const p of SUFFIX_PATTERNS) {
      expect(() => userDomain(p, []), p).toThrow(/public suffix/);
    }
    // A whole TLD, in punycode too, was already too broad.
    expect(() => userDomain("*.xn--p1ai", [])).toThrow(/too broad/);
    try {
      userDomain("*.github.io", []);
    } catch (err) {
      expect(err).toBeInstanceOf(LobuError);
      expect((err as LobuError).status).toBe(400);
      expect((err as LobuError).hint).toMatch(/full name/);
    }
  });

  it("accepts one owner's hosts under a public suffix, canonically spelled", () => {
    expect(userDomain("alice.github.io", [])).toBe("alice.github.io");
    expect(userDomain("*.alice.github.io", [])).toBe("*.alice.github.io");
    expect(userDomain("*.example.co.uk", [])).toBe("*.example.co.uk");
    expect(userDomain("Example.COM.", [])).toBe("example.com");
    expect(userDomain("*.Bücher.Example", [])).toBe("*.xn--bcher-kva.example");
    expect(userDomain("bucket.s3.amazonaws.com", [])).toBe("bucket.s3.amazonaws.com");
  });

  it("refuses what is not a plain domain pattern, also behind IDN spellings", () => {
    for (const bad of [
      "example.com/path",
      "bücher.example/path",
      "http://example.com",
      "example.com:443",
      "user@example.com",
      "*.",
      ".",
      "*.*.example.com",
    ]) {
      expect(() => userDomain(bad, []), bad).toThrow(/not a domain/);
    }
  });

  it("checks deny rules with their full reach", () => {
    expect(() => userDomain("alice.github.io", ["*.github.io"])).toThrow(/deny rule/);
  });
});

describe("matching", () => {
  it("a wildcard stops at public suffixes below its base", () => {
    expect(matchesPattern("sts.amazonaws.com", "*.amazonaws.com")).toBe(true);
    expect(matchesPattern("bucket.s3.amazonaws.com", "*.amazonaws.com")).toBe(false);
    expect(matchesPattern("x.y.compute.amazonaws.com", "*.amazonaws.com")).toBe(false);
    expect(matchesPattern("alice.github.io", "*.github.io")).toBe(true);
    expect(matchesPattern("a.alice.github.io", "*.alice.github.io")).toBe(true);
    expect(matchesPattern("api.example.co.uk", "*.example.co.uk")).toBe(true);
    expect(matchesPattern("anything.s3.amazonaws.com", "*")).toBe(true);
    // Deny rules reach everything they name.
    expect(firstDenied("bucket.s3.amazonaws.com", ["*.amazonaws.com"])).toBe("*.amazonaws.com");
  });

  it("says why a host under a stopped wildcard is refused", () => {
    const d = decide({ host: "bucket.s3.amazonaws.com", allow: ["*.amazonaws.com"], deny: [] });
    expect(d.allowed).toBe(false);
    expect(d.reason).toMatch(/under the public suffix s3\.amazonaws\.com/);
    expect(d.reason).toMatch(/allow bucket\.s3\.amazonaws\.com by its own name/);
    expect(
      decide({ host: "sts.amazonaws.com", allow: ["*.amazonaws.com"], deny: [] }).allowed,
    ).toBe(true);
  });

  it("spells patterns canonically and judges them on the list's private section too", () => {
    expect(canonicalPattern("*.公司.CN.")).toBe("*.xn--55qx5d.cn");
    expect(publicSuffixProblem("*.github.io")).toMatch(/every site under github\.io/);
    expect(publicSuffixProblem("herokuapp.com")).toMatch(/is a public suffix/);
    expect(publicSuffixProblem("*.internal")).toBeNull();
    expect(publicSuffixProblem("*")).toBeNull();
    expect(publicSuffixProblem("api.github.com")).toBeNull();
  });
});

function config(toml: Record<string, unknown>): LobuConfig {
  return LobuConfigSchema.parse(toml);
}

describe("operators (lobu.toml, agents created through the API)", () => {
  it("refuses public suffixes in every granting key, naming file and key", () => {
    const report = configPatternReport(
      config({
        network: { allow: ["*.co.uk", "api.github.com"], deny: ["*.github.io"] },
        agents: {
          helper: {
            network: { allow: ["*.github.io"] },
            secrets: { TOKEN: { secret: "t", hosts: ["*.herokuapp.com"] } },
          },
        },
        skills: { pages: { domains: ["github.io"] } },
      }),
      "/etc/lobu.toml",
    );
    expect(report.errors).toEqual([
      expect.stringMatching(
        /^\/etc\/lobu\.toml: network\.allow: "\*\.co\.uk" would allow every site under co\.uk.*list "\*\.co\.uk" in \[network\] allow_public_suffixes/,
      ),
      expect.stringMatching(/^\/etc\/lobu\.toml: agents\.helper\.network\.allow: "\*\.github\.io"/),
      expect.stringMatching(
        /^\/etc\/lobu\.toml: agents\.helper\.secrets\.TOKEN\.hosts: "\*\.herokuapp\.com"/,
      ),
      expect.stringMatching(
        /^\/etc\/lobu\.toml: skills\.pages\.domains: "github\.io" is a public suffix/,
      ),
    ]);
    expect(report.warnings).toEqual([]);
  });

  it("lets an operator opt into one explicitly, with a warning", () => {
    const report = configPatternReport(
      config({
        network: { allow: ["*.github.io"], allow_public_suffixes: ["*.GitHub.io", "example.com"] },
        agents: {
          helper: {
            network: { allow: ["*.herokuapp.com"], allow_public_suffixes: ["*.herokuapp.com"] },
          },
          other: { network: { allow: ["*.herokuapp.com"] } },
        },
      }),
    );
    expect(report.errors).toEqual([
      expect.stringMatching(/^lobu\.toml: agents\.other\.network\.allow: "\*\.herokuapp\.com"/),
    ]);
    expect(report.warnings).toEqual([
      expect.stringMatching(/^lobu\.toml: network\.allow: "\*\.github\.io" .*opted in/),
      expect.stringMatching(
        /^lobu\.toml: agents\.helper\.network\.allow: "\*\.herokuapp\.com" .*opted in/,
      ),
      expect.stringMatching(
        /network\.allow_public_suffixes: "example\.com" does not name a public suffix/,
      ),
    ]);
  });

  it("checks agents created through the API, with lobu.toml's global opt-ins only", () => {
    expect(
      agentPatternProblems(
        {
          network: { allow: ["*.co.uk", "ok.example"], deny: ["http://x"] },
          secrets: { T: { hosts: ["*.github.io"] } },
        },
        [],
      ),
    ).toEqual([
      expect.stringMatching(/^network\.allow: "\*\.co\.uk"/),
      expect.stringMatching(/^network\.deny: "http:\/\/x" is not a domain pattern/),
      expect.stringMatching(/^secrets\.T\.hosts: "\*\.github\.io"/),
    ]);
    expect(agentPatternProblems({ network: { allow: ["*.github.io"] } }, ["*.github.io"])).toEqual(
      [],
    );
    const cfg = config({});
    const providers = new ProviderRegistry(cfg, {});
    const skills = new SkillCatalog(cfg, undefined);
    expect(() =>
      checkAgentInput(
        { network: { allow: ["*.amazonaws.com", "*.s3.amazonaws.com"] } },
        providers,
        skills,
      ),
    ).toThrow(/"\*\.s3\.amazonaws\.com" would allow every site under s3\.amazonaws\.com/);
  });
});
