import { ToolPolicy } from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import { type AccountOf, ownAccount } from "../domain/accounts.ts";
import type { PersonDataKind } from "../domain/person-data.ts";
import type { KeyValue } from "../store/port.ts";
import { cacheReads } from "../store/read-cache.ts";
import { scanKeys } from "../store/scan.ts";
import { ReadMemo } from "../util/read-memo.ts";
import { readRecord } from "../util/stored-record.ts";

/**
 * What a person changed for their own agent (from the settings page or by
 * approving an agent's request). Layered over the agent definition: users can
 * add domains and skills and answer "ask" policies, never loosen a "deny".
 * Stored as `usettings:<agent>:<user key>`; fields added later default to
 * empty, so records written before them still read.
 */
export const UserAgentSettings = z.object({
  provider: z.string().optional(),
  model: z.string().optional(),
  skills: z.array(z.string()).default([]),
  domains: z.array(z.string()).default([]),
  packages: z.array(z.string()).default([]),
  mcp: z.array(z.string()).default([]),
  toolPolicy: z.record(z.string(), ToolPolicy).default({}),
  updatedAt: z.number().default(0),
});
export type UserAgentSettings = z.infer<typeof UserAgentSettings>;

const empty = (): UserAgentSettings => UserAgentSettings.parse({});

const key = (agentId: string, userKey: string) => `usettings:${agentId}:${userKey}`;
// A person's grants are read on every request of their turn: cached until the next write.
cacheReads("usettings:");

/** Settings handed to several readers: a change must go through `update`, never in place. */
function frozen(s: UserAgentSettings): UserAgentSettings {
  for (const v of Object.values(s)) if (typeof v === "object" && v !== null) Object.freeze(v);
  return Object.freeze(s);
}

export class UserSettingsStore {
  private readonly kv: KeyValue;
  private readonly log: Logger;
  /** Identity → account: linked identities share their settings (docs/identity.md). */
  private readonly accountOf: AccountOf;
  /** Decoded settings by their stored text (see ReadMemo); shared, so frozen. */
  readonly #read = new ReadMemo<UserAgentSettings>(4096);

  constructor(kv: KeyValue, log: Logger, accountOf: AccountOf = ownAccount) {
    this.kv = kv;
    this.log = log;
    this.accountOf = accountOf;
  }

  /**
   * A person's settings. Unreadable ones count as none (logged): they only
   * ever add to what the agent allows, so none is the safe reading.
   */
  async get(agentId: string, identity: string): Promise<UserAgentSettings> {
    const userKey = await this.accountOf(identity);
    const k = key(agentId, userKey);
    const raw = await this.kv.get(k);
    if (raw === null) return empty();
    // Read on every request the egress proxy forwards during a turn: the read stays
    // (a grant removed anywhere stops working at once), the parse is memoized.
    return this.#read.get(k, raw, (r) =>
      frozen(this.#decode(agentId, userKey, r, "none are used")),
    );
  }

  /**
   * Read-modify-write with kv.update, so two tabs saving at once both land
   * (`change` may run more than once). Unreadable settings are replaced by
   * the change applied to none (logged).
   */
  async update(
    agentId: string,
    identity: string,
    change: (current: UserAgentSettings) => UserAgentSettings,
  ): Promise<UserAgentSettings> {
    const userKey = await this.accountOf(identity);
    let next!: UserAgentSettings;
    await this.kv.update(key(agentId, userKey), (raw) => {
      const current =
        raw === null ? empty() : this.#decode(agentId, userKey, raw, "replaced by this change");
      next = { ...change(current), updatedAt: Date.now() };
      return JSON.stringify(next);
    });
    return next;
  }

  /**
   * The settings kept under this user key on every agent (agent ids never
   * contain `:`): an identity's own, not its account's.
   */
  async ofPerson(userKey: string): Promise<{ agentId: string; key: string; raw: string }[]> {
    const out: { agentId: string; key: string; raw: string }[] = [];
    for await (const { key: k, value } of scanKeys(this.kv, "usettings:")) {
      const rest = k.slice("usettings:".length);
      const at = rest.indexOf(":");
      if (at > 0 && rest.slice(at + 1) === userKey)
        out.push({ agentId: rest.slice(0, at), key: k, raw: value });
    }
    return out;
  }

  /** The person's settings as a kind of person data (export and erasure). */
  personData(): PersonDataKind {
    return {
      name: "settings",
      export: async (p) =>
        Object.fromEntries(
          (await this.ofPerson(p.userKey)).map((s) => [
            s.agentId,
            this.#decode(s.agentId, p.userKey, s.raw, "exported as none"),
          ]),
        ),
      erase: async (p) => {
        let settings = 0;
        for (const s of await this.ofPerson(p.userKey)) if (await this.kv.del(s.key)) settings++;
        return { settings };
      },
    };
  }

  #decode(agentId: string, userKey: string, raw: string, what: string): UserAgentSettings {
    const source = { record: "user settings", key: key(agentId, userKey) };
    return readRecord(UserAgentSettings, raw, source, this.log, what) ?? empty();
  }
}
