import { LobuConfig } from "@lobu/core";
import { describe, expect, it } from "vitest";
import { type AccessPolicy, accessFromSection, checkAccess } from "../../src/agents/access.ts";
import { ambientMatches, inChannel } from "../../src/agents/channels.ts";
import { effectivePolicy } from "../../src/agents/context.ts";
import type { AgentDefinition } from "../../src/agents/registry.ts";
import type { Origin } from "../../src/domain/origin.ts";
import type { PlatformFacts, SenderProfile } from "../../src/domain/platform-facts.ts";
import { LookupCache } from "../../src/platforms/shared/lookup-cache.ts";

/**
 * The access decision and a channel's overrides as pure functions: what each
 * rule refuses, that deny wins, that anything the platform cannot confirm is
 * refused, and that a channel's tool set cannot be loosened.
 */

const policyOf = (access: Record<string, unknown>): AccessPolicy =>
  accessFromSection(LobuConfig.parse({ agents: { a: { access } } }).agents.a!.access);

const member: SenderProfile = { team: "T1", guest: false, deactivated: false, bot: false };

/** `null`: the platform could not say who the sender is. */
function facts(
  sender: SenderProfile | null = member,
  opts: {
    external?: boolean | undefined;
    groups?: string[];
    channelUnknown?: boolean;
    groupsUnknown?: boolean;
  } = {},
): PlatformFacts & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    sender: async () => {
      asked.push("sender");
      return sender ?? undefined;
    },
    channel: async () => {
      asked.push("channel");
      return opts.channelUnknown ? undefined : { external: opts.external ?? false };
    },
    inGroup: async (g) => {
      asked.push(`group:${g}`);
      return opts.groupsUnknown ? undefined : (opts.groups ?? []).includes(g);
    },
  };
}

const inChannelOf = (channelId: string, userId = "U1"): Origin => ({
  platform: "slack",
  workspace: "T1",
  channelId,
  userId,
  isDirect: false,
});
const dm: Origin = { ...inChannelOf("D1"), isDirect: true };

describe("access rules", () => {
  it("lets everyone in an ordinary channel use an agent without rules", async () => {
    expect(await checkAccess(policyOf({}), inChannelOf("C1"), facts())).toBeUndefined();
  });

  it("refuses external channels by default, and allows one named explicitly", async () => {
    const open = policyOf({});
    const refusal = await checkAccess(open, inChannelOf("C9"), facts(member, { external: true }));
    expect(refusal).toMatchObject({ reason: "external", quiet: false });
    expect(refusal?.message).toContain("slack:T1:C9");
    const allowed = policyOf({ external_channels: ["slack:T1:C9"] });
    expect(
      await checkAccess(allowed, inChannelOf("C9"), facts(member, { external: true })),
    ).toBeUndefined();
  });

  it("fails closed: a channel or a person the platform could not look up is refused", async () => {
    const open = policyOf({});
    expect(
      await checkAccess(open, inChannelOf("C1"), facts(member, { channelUnknown: true })),
    ).toMatchObject({ reason: "unverified" });
    expect(await checkAccess(open, inChannelOf("C1"), facts(null))).toMatchObject({
      reason: "unverified",
    });
  });

  it("fails closed on groups too: a deny group that cannot be listed refuses, an allow group does not admit", async () => {
    const unknown = facts(member, { groupsUnknown: true });
    expect(
      await checkAccess(
        policyOf({ deny: { groups: ["slack:T1:S9"] } }),
        inChannelOf("C1"),
        unknown,
      ),
    ).toMatchObject({ reason: "unverified" });
    expect(
      await checkAccess(
        policyOf({ allow: { groups: ["slack:T1:S9"] } }),
        inChannelOf("C1"),
        unknown,
      ),
    ).toMatchObject({ reason: "not_allowed" });
  });

  it("refuses a person of another organization even in a channel not marked shared", async () => {
    const outsider = { ...member, team: "T-OTHER" };
    expect(await checkAccess(policyOf({}), inChannelOf("C1"), facts(outsider))).toMatchObject({
      reason: "external",
    });
    expect(await checkAccess(policyOf({}), dm, facts(outsider))).toMatchObject({
      reason: "external",
    });
  });

  it("refuses guests unless allowed; bots and deactivated accounts always, quietly", async () => {
    const guest = { ...member, guest: true };
    expect(await checkAccess(policyOf({}), inChannelOf("C1"), facts(guest))).toMatchObject({
      reason: "guest",
    });
    expect(
      await checkAccess(policyOf({ guests: true }), inChannelOf("C1"), facts(guest)),
    ).toBeUndefined();
    for (const who of [
      { ...member, bot: true },
      { ...member, deactivated: true },
    ]) {
      const refusal = await checkAccess(policyOf({ guests: true }), inChannelOf("C1"), facts(who));
      expect(refusal?.quiet).toBe(true);
    }
  });

  it("deny beats allow: user, email domain and group", async () => {
    const p = policyOf({
      allow: { email_domains: ["example.com"], users: ["slack:T1:U1"] },
      deny: { users: ["slack:T1:U1"], email_domains: ["*.example.com"], groups: ["slack:T1:S1"] },
    });
    const mail = (email: string) => ({ ...member, email });
    expect(
      await checkAccess(p, inChannelOf("C1", "U1"), facts(mail("a@example.com"))),
    ).toMatchObject({
      reason: "denied",
    });
    expect(
      await checkAccess(p, inChannelOf("C1", "U2"), facts(mail("a@eu.example.com"))),
    ).toMatchObject({
      reason: "denied",
    });
    expect(
      await checkAccess(
        p,
        inChannelOf("C1", "U3"),
        facts(mail("b@example.com"), { groups: ["S1"] }),
      ),
    ).toMatchObject({ reason: "denied" });
    expect(
      await checkAccess(p, inChannelOf("C1", "U4"), facts(mail("c@example.com"))),
    ).toBeUndefined();
  });

  it("matches email domains exactly or by subdomain wildcard, never by suffix", async () => {
    const p = policyOf({ allow: { email_domains: ["example.com"] } });
    const with_ = (email: string) => facts({ ...member, email });
    expect(await checkAccess(p, inChannelOf("C1"), with_("a@EXAMPLE.com"))).toBeUndefined();
    expect(await checkAccess(p, inChannelOf("C1"), with_("a@badexample.com"))).toMatchObject({
      reason: "not_allowed",
    });
    expect(await checkAccess(p, inChannelOf("C1"), with_("a@example.com.evil.org"))).toMatchObject({
      reason: "not_allowed",
    });
    expect(await checkAccess(p, inChannelOf("C1"), facts(member))).toMatchObject({
      reason: "not_allowed",
    });
  });

  it("names groups per platform and workspace: another workspace's group never matches", async () => {
    const p = policyOf({ allow: { groups: ["slack:T2:S1", "slack:T1:admins"] } });
    const f = facts(member, { groups: ["S1"] });
    expect(await checkAccess(p, inChannelOf("C1"), f)).toMatchObject({ reason: "not_allowed" });
    expect(f.asked).toContain("group:admins");
    expect(f.asked).not.toContain("group:S1");
    expect(
      await checkAccess(p, inChannelOf("C1"), facts(member, { groups: ["admins"] })),
    ).toBeUndefined();
  });

  it("limits channels and direct messages, and asks the platform nothing for what is refused outright", async () => {
    const p = policyOf({
      direct_messages: false,
      allow: { channels: ["slack:T1:C1"] },
      deny: { channels: ["slack:T1:C3"] },
    });
    const f = facts();
    expect(await checkAccess(p, dm, f)).toMatchObject({ reason: "direct_messages" });
    expect(await checkAccess(p, inChannelOf("C3"), f)).toMatchObject({ reason: "channel" });
    expect(f.asked).toEqual([]);
    expect(await checkAccess(p, inChannelOf("C2"), facts())).toMatchObject({ reason: "channel" });
    expect(await checkAccess(p, inChannelOf("C1"), facts())).toBeUndefined();
  });

  it("covers REST API users by the same lists (platform api), without a DM switch", async () => {
    const p = policyOf({ direct_messages: false, allow: { users: ["api::alice"] } });
    const api = (userId: string): Origin => ({
      platform: "api",
      workspace: "",
      channelId: "chat",
      userId,
      isDirect: true,
    });
    expect(await checkAccess(p, api("alice"))).toBeUndefined();
    expect(await checkAccess(p, api("mallory"))).toMatchObject({ reason: "not_allowed" });
  });
});

const agent: AgentDefinition = {
  id: "a",
  name: "A",
  description: "",
  tools: ["bash", "read", "write"],
  skills: [],
  groupRouting: "per-user",
  network: { allow: [], deny: [] },
  policy: { default: "allow", tools: { bash: "ask", gw_tool: "ask" }, requestTimeoutMs: 1000 },
  secrets: {},
  source: "config",
  createdAt: 0,
  updatedAt: 0,
};

const channelSection = (c: Record<string, unknown>) =>
  LobuConfig.parse({ channels: { "slack:T1:C1": c } }).channels["slack:T1:C1"];

describe("a channel's overrides", () => {
  it("keeps only the channel's tools, and a person's answers cannot bring one back", () => {
    const narrowed = inChannel(agent, channelSection({ tools: ["read", "gw_tool"] }));
    expect(narrowed.tools).toEqual(["read"]);
    const policy = effectivePolicy(narrowed, { bash: "allow", gw_tool: "allow", write: "allow" });
    expect(policy.bash).toBe("deny");
    // Not named at all: the default, which a channel's tool set turns to deny.
    expect(policy.write ?? policy["*"]).toBe("deny");
    expect(policy.read).toBe("allow");
    // A gateway tool the channel keeps keeps its own policy (and the person's answer to "ask").
    expect(policy.gw_tool).toBe("allow");
    expect(policy["*"]).toBe("deny");
  });

  it("never widens: a channel inside a channel narrows further", () => {
    const once = inChannel(agent, channelSection({ tools: ["read"] }));
    const twice = inChannel(once, channelSection({ tools: ["read", "bash"] }));
    expect(twice.tools).toEqual(["read"]);
    expect(effectivePolicy(twice, {}).bash).toBe("deny");
  });

  it("replaces the prompt, the model and the persona", () => {
    const c = inChannel(
      agent,
      channelSection({
        system_prompt: "Be brief.",
        model: "m-2",
        persona: { name: "Helper", icon_url: "https://example.com/h.png" },
      }),
    );
    expect(c).toMatchObject({
      systemPrompt: "Be brief.",
      model: "m-2",
      persona: { name: "Helper", iconUrl: "https://example.com/h.png" },
      tools: agent.tools,
    });
    expect(c.allowedTools).toBeUndefined();
  });

  it("refuses a channel key that is not platform:workspace:channel", () => {
    expect(LobuConfig.safeParse({ channels: { general: {} } }).success).toBe(false);
  });
});

describe("ambient rules", () => {
  const rule = (r: Record<string, unknown>) => channelSection({ ambient: r })!.ambient;

  it("questions: a question mark at the end or a question word at the start", () => {
    const q = rule({ mode: "questions" });
    expect(ambientMatches(q, "is the build green")).toBe(true);
    expect(ambientMatches(q, "the build is green?")).toBe(true);
    expect(ambientMatches(q, "the build is green")).toBe(false);
    expect(ambientMatches(q, "whatever works")).toBe(false);
  });

  it("keywords: whole words, any case; all and off", () => {
    const k = rule({ mode: "keywords", keywords: ["deploy", "on call"] });
    expect(ambientMatches(k, "Can we DEPLOY now")).toBe(true);
    expect(ambientMatches(k, "who is on call today")).toBe(true);
    expect(ambientMatches(k, "redeployment done")).toBe(false);
    expect(ambientMatches(rule({ mode: "all" }), "hi")).toBe(true);
    expect(ambientMatches(rule({}), "what?")).toBe(false);
  });
});

describe("lookup cache", () => {
  it("is bounded, expires entries, shares a lookup in flight and keeps no failure", async () => {
    const cache = new LookupCache<number>({ ttlMs: 60_000, maxEntries: 2 });
    let calls = 0;
    const look = async () => ++calls;
    const [a, b] = await Promise.all([cache.get("a", look), cache.get("a", look)]);
    expect([a, b, calls]).toEqual([1, 1, 1]);
    await cache.get("b", look);
    await cache.get("c", look);
    expect(cache.size).toBe(2);
    expect(await cache.get("a", look)).toBe(4); // "a" was the oldest and went
    await expect(cache.get("x", () => Promise.reject(new Error("down")))).rejects.toThrow("down");
    expect(await cache.get("x", look)).toBe(5);
  });
});
