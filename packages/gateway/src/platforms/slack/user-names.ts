import type { Workspace } from "./workspaces.ts";

const NAME_TTL_MS = 3_600_000;
/** A name is nice to have: it never holds up storing the message (Slack waits 3 s for the answer). */
const NAME_LOOKUP_MS = 1_500;
const NAME_CACHE_MAX = 10_000;

/** People's display names (users.info), cached for an hour; undefined when Slack is slow or says no. */
export class UserNames {
  readonly #names = new Map<string, { name: string | undefined; at: number }>();

  async of(ws: Workspace, userId: string): Promise<string | undefined> {
    const key = `${ws.teamId}:${userId}`;
    const cached = this.#names.get(key);
    if (cached && Date.now() - cached.at < NAME_TTL_MS) return cached.name;
    const lookup = ws.client.users
      .info({ user: userId })
      .then(
        (res) =>
          res.user?.profile?.display_name || res.user?.real_name || res.user?.name || undefined,
      )
      .catch(() => undefined);
    const timeout = new Promise<undefined>((resolve) =>
      setTimeout(() => resolve(undefined), NAME_LOOKUP_MS).unref(),
    );
    const name = await Promise.race([lookup, timeout]);
    if (this.#names.size >= NAME_CACHE_MAX) this.#names.clear();
    this.#names.set(key, { name, at: Date.now() });
    return name;
  }
}
