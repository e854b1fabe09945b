import type { Api } from "grammy";
import type { PlatformFacts } from "../../domain/platform-facts.ts";
import { LookupCache } from "../shared/lookup-cache.ts";

const TTL_MS = 5 * 60_000;

/**
 * What Telegram can tell the access check: whether the sender is a bot (in
 * the update itself) and who administers a group (getChatAdministrators,
 * cached briefly). Telegram has no guests, deactivated accounts, emails or
 * channels shared between organizations.
 */
export class TelegramDirectory {
  readonly #admins = new LookupCache<ReadonlySet<number>>({ ttlMs: TTL_MS, maxEntries: 5_000 });
  readonly #api: Api;

  constructor(api: Api) {
    this.#api = api;
  }

  /** Administrators of a group (the creator included); undefined when Telegram will not say. */
  admins(chatId: number): Promise<ReadonlySet<number> | undefined> {
    return this.#admins
      .get(String(chatId), async () => {
        const members = await this.#api.getChatAdministrators(chatId);
        return new Set(members.map((m) => m.user.id));
      })
      .catch(() => undefined);
  }

  facts(msg: {
    chatId: number;
    isPrivate: boolean;
    from: { id: number; is_bot: boolean };
  }): PlatformFacts {
    return {
      sender: async () => ({ guest: false, deactivated: false, bot: msg.from.is_bot }),
      channel: async () => ({ external: false }),
      // `admins`: the group's administrators (in a private chat there are none).
      inGroup: async (group) => {
        if (group !== "admins" || msg.isPrivate) return false;
        return (await this.admins(msg.chatId))?.has(msg.from.id);
      },
    };
  }
}
