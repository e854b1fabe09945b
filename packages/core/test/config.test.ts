import { describe, expect, it } from "vitest";
import { formatDuration, LobuError, parseConfig, parseDuration } from "../src/index.ts";

describe("lobu.toml", () => {
  it("fills defaults for an empty file", () => {
    const c = parseConfig("");
    expect(c.gateway.port).toBe(8080);
    expect(c.store.driver).toBe("sqlite");
    expect(c.sandbox.idle_timeout).toBe(600_000);
    expect(c.agents).toEqual({});
  });

  it("parses agents with network, policy and secrets", () => {
    const c = parseConfig(`
[agents.ops]
model = "m"
group_routing = "per-channel"
[agents.ops.network]
allow = ["api.github.com", "*.npmjs.org"]
[agents.ops.policy]
tools = { bash = "ask" }
request_timeout = "2m"
[agents.ops.secrets]
GITHUB_TOKEN = { secret = "github", hosts = ["api.github.com"] }
`);
    const ops = c.agents.ops!;
    expect(ops.tools).toContain("bash");
    expect(ops.policy.tools.bash).toBe("ask");
    expect(ops.policy.request_timeout).toBe(120_000);
    expect(ops.secrets.GITHUB_TOKEN).toEqual({
      secret: "github",
      hosts: ["api.github.com"],
      locations: ["header"],
    });
  });

  it("names the file, the key and what is expected", () => {
    let err: unknown;
    try {
      parseConfig(
        `[agents.default]\nmodle = 1\ntools = ["bash", "rm"]\n[sandbox]\nidle_timeout = "soon"`,
        "/etc/lobu.toml",
      );
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LobuError);
    const msg = (err as LobuError).message;
    expect(msg).toContain('/etc/lobu.toml: unknown key "modle" in [agents.default]');
    expect(msg).toContain("/etc/lobu.toml: agents.default.tools[1]:");
    expect(msg).toContain('/etc/lobu.toml: sandbox.idle_timeout: invalid duration "soon"');
  });

  it("reports TOML syntax errors with a position", () => {
    expect(() => parseConfig("[gateway\nport = 1")).toThrow(/not valid TOML \(line 1/);
  });

  it("rejects bad domain patterns and agent ids", () => {
    expect(() => parseConfig(`[network]\nallow = ["http://x.com"]`)).toThrow(
      /network\.allow\[0\]: expected a domain/,
    );
    expect(() => parseConfig(`[agents.Bad_Id]\n`)).toThrow(/agents/);
  });

  it("refuses client-minted api identities as admins", () => {
    // api:<namespace>:<user> people are created by client tokens (docs/api.md, Roles).
    expect(() => parseConfig(`[admin]\nusers = ["api:acme:boss"]`)).toThrow(
      /admin\.users\[0\]: an api user in a namespace/,
    );
    expect(parseConfig(`[admin]\nusers = ["api::boss", "slack:T1:U1"]`).admin.users).toHaveLength(
      2,
    );
  });

  it("caps event streams per token and per address", () => {
    expect(parseConfig("").gateway).toMatchObject({
      max_streams_per_token: 64,
      max_streams_per_address: 128,
    });
    expect(() => parseConfig(`[gateway]\nmax_streams_per_token = 0`)).toThrow(
      /max_streams_per_token/,
    );
  });
});

describe("durations", () => {
  it("parses units and seconds", () => {
    expect(parseDuration("90s")).toBe(90_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration(5)).toBe(5000);
    expect(parseDuration("250ms")).toBe(250);
    expect(() => parseDuration("5 minutes")).toThrow(/invalid duration/);
    expect(formatDuration(600_000)).toBe("10m");
  });
});

describe("[retention]", () => {
  it("reads periods per kind, 'forever', and an agent's overrides", () => {
    const c = parseConfig(`
[retention]
audit = "365d"
transcripts = "forever"
[agents.support.retention]
transcripts = "90d"
events = "12h"
`);
    expect(c.retention.audit).toBe(365 * 86_400_000);
    expect(c.retention.transcripts).toBe("forever");
    expect(c.retention.sweep_interval).toBe(3_600_000);
    expect(c.agents.support!.retention).toEqual({
      transcripts: 90 * 86_400_000,
      events: 43_200_000,
    });
    expect(parseConfig("").retention.files).toBeUndefined();
  });

  it("refuses periods under an hour and unknown kinds, saying what to write", () => {
    expect(() => parseConfig('[retention]\nfiles = "10m"')).toThrow(/at least 1h/);
    expect(() => parseConfig('[retention]\nfiles = "soon"')).toThrow(/invalid duration/);
    expect(() => parseConfig('[agents.a.retention]\nmemories = "1d"')).toThrow(/memories/);
  });
});
