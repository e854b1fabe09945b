import type { AccessSection } from "@lobu/core";
import { z } from "zod";
import { coversHost, matchesPattern, normalizeHost } from "../domain/host-patterns.ts";
import { type Origin, userKeyOf } from "../domain/origin.ts";
import type { PlatformFacts, SenderProfile } from "../domain/platform-facts.ts";

/**
 * Who may use an agent (lobu.toml `[agents.<id>.access]`, docs/admin.md):
 * checked by Inbound before anything is stored, so a refusal costs no
 * sandbox, no model call and no queue entry. The platform's facts (profile,
 * channel, groups) are asked for only when a rule needs them, cheapest first.
 */

const List = z.object({
  users: z.array(z.string()),
  groups: z.array(z.string()),
  emailDomains: z.array(z.string()),
  channels: z.array(z.string()),
});

/** An agent's access rules as the gateway keeps them (camelCase; stored with API agents). */
export const AccessPolicy = z.object({
  allow: List,
  deny: List,
  directMessages: z.boolean(),
  guests: z.boolean(),
  externalChannels: z.array(z.string()),
});
export type AccessPolicy = z.infer<typeof AccessPolicy>;

const emptyList = (): z.infer<typeof List> => ({
  users: [],
  groups: [],
  emailDomains: [],
  channels: [],
});

/** Everyone, everywhere but external channels: what an agent without rules gets. */
export function openAccess(): AccessPolicy {
  return {
    allow: emptyList(),
    deny: emptyList(),
    directMessages: true,
    guests: false,
    externalChannels: [],
  };
}

export function accessFromSection(s: AccessSection): AccessPolicy {
  const list = (l: AccessSection["allow"]) => ({
    users: [...l.users],
    groups: [...l.groups],
    emailDomains: [...l.email_domains],
    channels: [...l.channels],
  });
  return {
    allow: list(s.allow),
    deny: list(s.deny),
    directMessages: s.direct_messages,
    guests: s.guests,
    externalChannels: [...s.external_channels],
  };
}

/** `platform:workspace:channel`, the key `[channels.*]` and the access lists name a channel by. */
export function channelKeyOf(origin: Pick<Origin, "platform" | "workspace" | "channelId">): string {
  return `${origin.platform}:${origin.workspace ?? ""}:${origin.channelId}`;
}

export type RefusalReason =
  | "denied"
  | "not_allowed"
  | "direct_messages"
  | "channel"
  | "external"
  | "guest"
  | "bot"
  | "deactivated"
  | "unverified";

export interface Refusal {
  reason: RefusalReason;
  /** For the person (and whoever invited the agent): what happened and what to do. */
  message: string;
  /** Not worth a reply: bots and deactivated accounts (a reply could start a loop). */
  quiet: boolean;
}

/** A platform that says nothing (the REST API): an ordinary member in an ordinary channel. */
const NO_FACTS: PlatformFacts = {
  sender: async () => ({ guest: false, deactivated: false, bot: false }),
  channel: async () => ({ external: false }),
  inGroup: async () => false,
};

const refuse = (reason: RefusalReason, message: string, quiet = false): Refusal => ({
  reason,
  message,
  quiet,
});

/**
 * The access decision for one message, or undefined when it may go on. Deny
 * wins over allow; anything the platform cannot confirm is refused (an
 * external channel is assumed where the channel could not be looked up).
 */
export async function checkAccess(
  policy: AccessPolicy,
  origin: Origin,
  facts: PlatformFacts = NO_FACTS,
): Promise<Refusal | undefined> {
  const channel = channelKeyOf(origin);
  const user = userKeyOf(origin);
  // The REST API's conversations are direct by nature; the DM switch is about chat platforms.
  const chatDm = origin.isDirect && origin.platform !== "api";
  if (chatDm && !policy.directMessages)
    return refuse(
      "direct_messages",
      "This agent does not take direct messages. Mention it in a channel it works in instead.",
    );
  if (!origin.isDirect && policy.deny.channels.includes(channel))
    return refuse("channel", "This agent is not available in this channel.");
  if (policy.deny.users.includes(user))
    return refuse("denied", "You are not allowed to use this agent. Ask its operator for access.");

  const externalAllowed = policy.externalChannels.includes(channel);
  if (!origin.isDirect && !externalAllowed) {
    const info = await facts.channel();
    if (!info)
      return refuse(
        "unverified",
        "Could not check this channel with the platform, so the agent does not answer here for now. Try again in a minute.",
      );
    if (info.external) return externalRefusal(channel);
  }
  const sender = await facts.sender();
  if (!sender)
    return refuse(
      "unverified",
      "Could not check your account with the platform, so the agent does not answer for now. Try again in a minute.",
    );
  const quietly = senderRefusal(sender);
  if (quietly) return quietly;
  if (sender.guest && !policy.guests)
    return refuse(
      "guest",
      "Guest accounts may not use this agent. Ask a workspace member for help.",
    );
  if (sender.team && origin.workspace && sender.team !== origin.workspace && !externalAllowed)
    return externalRefusal(channel);

  const domain = emailDomain(sender);
  if (domain && policy.deny.emailDomains.some((p) => coversHost(domain, p)))
    return refuse("denied", "You are not allowed to use this agent. Ask its operator for access.");
  for (const group of policy.deny.groups) {
    const member = await inGroup(facts, origin, group);
    if (member === undefined)
      return refuse(
        "unverified",
        "Could not check your groups with the platform, so the agent does not answer for now. Try again in a minute.",
      );
    if (member)
      return refuse(
        "denied",
        "You are not allowed to use this agent. Ask its operator for access.",
      );
  }
  if (
    !origin.isDirect &&
    policy.allow.channels.length > 0 &&
    !policy.allow.channels.includes(channel)
  )
    return refuse(
      "channel",
      "This agent is not enabled in this channel. Ask its operator to allow the channel.",
    );
  if (!(await allowedPerson(policy, origin, facts, domain)))
    return refuse(
      "not_allowed",
      "You are not on this agent's list of people who may use it. Ask its operator for access.",
    );
  return undefined;
}

function externalRefusal(channel: string): Refusal {
  return refuse(
    "external",
    `This channel is shared with another organization, and this agent does not work in shared channels unless its operator allows it (channel ${channel}). Whoever invited it: remove it, or ask the operator to allow this channel.`,
  );
}

function senderRefusal(sender: SenderProfile): Refusal | undefined {
  if (sender.bot) return refuse("bot", "Bots may not use this agent.", true);
  if (sender.deactivated) return refuse("deactivated", "This account is deactivated.", true);
  return undefined;
}

function emailDomain(sender: SenderProfile): string | undefined {
  const at = sender.email?.lastIndexOf("@") ?? -1;
  if (!sender.email || at < 0) return undefined;
  return normalizeHost(sender.email.slice(at + 1)) ?? undefined;
}

/** `platform:workspace:group` names a group of the message's own platform and workspace only. */
async function inGroup(
  facts: PlatformFacts,
  origin: Origin,
  key: string,
): Promise<boolean | undefined> {
  const prefix = `${origin.platform}:${origin.workspace ?? ""}:`;
  if (!key.startsWith(prefix)) return false;
  return facts.inGroup(key.slice(prefix.length));
}

/** With no people on the allow lists, everyone; otherwise someone on one of them. */
async function allowedPerson(
  policy: AccessPolicy,
  origin: Origin,
  facts: PlatformFacts,
  domain: string | undefined,
): Promise<boolean> {
  const { users, groups, emailDomains } = policy.allow;
  if (users.length === 0 && groups.length === 0 && emailDomains.length === 0) return true;
  if (users.includes(userKeyOf(origin))) return true;
  if (domain && emailDomains.some((p) => matchesPattern(domain, p))) return true;
  for (const group of groups) {
    if ((await inGroup(facts, origin, group)) === true) return true;
  }
  return false;
}
