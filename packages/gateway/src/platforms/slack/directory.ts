import type { Logger } from "pino";
import type { ChannelProfile, PlatformFacts, SenderProfile } from "../../domain/platform-facts.ts";
import { LookupCache } from "../shared/lookup-cache.ts";
import { slackErrorCode } from "./client.ts";
import type { Workspace } from "./workspaces.ts";

/** Profiles change rarely, and a change (a deactivation) should act within minutes. */
const TTL_MS = 5 * 60_000;
const MAX_ENTRIES = 10_000;
/** Slack waits 3 s for the answer to a delivery; lookups must leave room for storing the message. */
const LOOKUP_MS = 2_000;
/** A failing lookup is logged at most this often per method and error (not at every message). */
const WARN_EVERY_MS = 5 * 60_000;

/** What users.info says about a person (needs `users:read`; the email needs `users:read.email`). */
export interface SlackPerson extends SenderProfile {
  name: string | undefined;
  /** Workspace admin or owner (`is_admin`, `is_owner`). */
  admin: boolean;
}

type UserInfo = {
  name?: string;
  real_name?: string;
  team_id?: string;
  deleted?: boolean;
  is_bot?: boolean;
  is_restricted?: boolean;
  is_ultra_restricted?: boolean;
  is_admin?: boolean;
  is_owner?: boolean;
  is_primary_owner?: boolean;
  profile?: { display_name?: string; email?: string };
};

type ChannelInfo = {
  is_ext_shared?: boolean;
  is_shared?: boolean;
  is_pending_ext_shared?: boolean;
};

function withTimeout<T>(call: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("Slack lookup timed out")), LOOKUP_MS);
    timer.unref();
  });
  return Promise.race([call, timeout]).finally(() => clearTimeout(timer));
}

/**
 * People, channels and user groups as Slack describes them, looked up with
 * the workspace's bot token and cached briefly (a bounded cache). What the
 * access check asks (PlatformFacts) and people's display names come from here.
 */
export class SlackDirectory {
  readonly #people = new LookupCache<SlackPerson>({ ttlMs: TTL_MS, maxEntries: MAX_ENTRIES });
  readonly #channels = new LookupCache<ChannelProfile>({ ttlMs: TTL_MS, maxEntries: MAX_ENTRIES });
  readonly #groups = new LookupCache<ReadonlySet<string>>({ ttlMs: TTL_MS, maxEntries: 1_000 });
  readonly #log: Logger | undefined;
  readonly #warned = new Map<string, number>();

  constructor(log?: Logger) {
    this.#log = log;
  }

  /**
   * Say why a lookup failed, so the operator can fix it: messages it was for
   * are refused meanwhile (fail closed). A missing scope names the scope.
   */
  #failed(method: string, err: unknown): undefined {
    const code = slackErrorCode(err) ?? (err as Error).message;
    const key = `${method}:${code}`;
    const last = this.#warned.get(key) ?? 0;
    if (Date.now() - last >= WARN_EVERY_MS) {
      this.#warned.set(key, Date.now());
      const needed = (err as { data?: { needed?: string } }).data?.needed;
      this.#log?.warn(
        { method, error: code, ...(needed ? { needed } : {}) },
        needed
          ? `Slack refused ${method}: the app lacks the ${needed} scope; add it (docs/platforms/slack.md, Scopes) and reinstall. Until then the access check refuses the messages that need it.`
          : `Slack lookup ${method} failed; the access check refuses the messages that need it until it works`,
      );
    }
    return undefined;
  }

  /** The person, or undefined when Slack is slow or says no (not cached: asked again next time). */
  person(ws: Workspace, userId: string): Promise<SlackPerson | undefined> {
    return this.#people
      .get(`${ws.teamId}:${userId}`, async () => {
        const res = await withTimeout(ws.client.users.info({ user: userId }));
        return personOf(res.user as UserInfo | undefined);
      })
      .catch((err) => this.#failed("users.info", err));
  }

  channel(ws: Workspace, channelId: string): Promise<ChannelProfile | undefined> {
    return this.#channels
      .get(`${ws.teamId}:${channelId}`, async () => {
        const res = await withTimeout(ws.client.conversations.info({ channel: channelId }));
        const c = (res.channel ?? {}) as ChannelInfo;
        // Org-wide shared channels (Enterprise Grid) count as shared too: fail closed.
        return { external: Boolean(c.is_ext_shared || c.is_shared || c.is_pending_ext_shared) };
      })
      .catch((err) => this.#failed("conversations.info", err));
  }

  /** Members of a user group (`usergroups:read`); undefined when Slack will not say. */
  groupMembers(ws: Workspace, groupId: string): Promise<ReadonlySet<string> | undefined> {
    return this.#groups
      .get(`${ws.teamId}:${groupId}`, async () => {
        const res = await withTimeout(ws.client.usergroups.users.list({ usergroup: groupId }));
        return new Set(res.users ?? []);
      })
      .catch((err) => this.#failed("usergroups.users.list", err));
  }

  /**
   * What the access check may ask about one message, each looked up when
   * first asked (a message the access rules never look at costs nothing).
   * `userTeam`: the team the event says the sender belongs to (Slack Connect).
   */
  facts(
    ws: Workspace,
    m: { user: string; channel: string; isDirect: boolean; userTeam: string | undefined },
  ): PlatformFacts {
    const person = once(() => this.person(ws, m.user));
    const channel = once(() =>
      m.isDirect ? Promise.resolve({ external: false }) : this.channel(ws, m.channel),
    );
    return {
      sender: async () => {
        const p = await person();
        // The event's team wins: it is who Slack says sent this message.
        return p && { ...p, ...(m.userTeam ? { team: m.userTeam } : {}) };
      },
      channel,
      inGroup: async (group) => {
        if (group === "admins") return (await person())?.admin;
        return (await this.groupMembers(ws, group))?.has(m.user);
      },
    };
  }
}

function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => {
    p ??= fn();
    return p;
  };
}

function personOf(u: UserInfo | undefined): SlackPerson {
  if (!u) throw new Error("users.info returned no user");
  return {
    name: u.profile?.display_name || u.real_name || u.name || undefined,
    ...(u.team_id ? { team: u.team_id } : {}),
    ...(u.profile?.email ? { email: u.profile.email } : {}),
    guest: Boolean(u.is_restricted || u.is_ultra_restricted),
    deactivated: Boolean(u.deleted),
    bot: Boolean(u.is_bot),
    admin: Boolean(u.is_admin || u.is_owner || u.is_primary_owner),
  };
}
