import { ToolPolicy } from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import type { KeyValue } from "../store/port.ts";
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

export class UserSettingsStore {
  private readonly kv: KeyValue;
  private readonly log: Logger;

  constructor(kv: KeyValue, log: Logger) {
    this.kv = kv;
    this.log = log;
  }

  /**
   * A person's settings. Unreadable ones count as none (logged): they only
   * ever add to what the agent allows, so none is the safe reading.
   */
  async get(agentId: string, userKey: string): Promise<UserAgentSettings> {
    const raw = await this.kv.get(key(agentId, userKey));
    return raw === null ? empty() : this.#decode(agentId, userKey, raw, "none are used");
  }

  /**
   * Read-modify-write with kv.update, so two tabs saving at once both land
   * (`change` may run more than once). Unreadable settings are replaced by
   * the change applied to none (logged).
   */
  async update(
    agentId: string,
    userKey: string,
    change: (current: UserAgentSettings) => UserAgentSettings,
  ): Promise<UserAgentSettings> {
    let next!: UserAgentSettings;
    await this.kv.update(key(agentId, userKey), (raw) => {
      const current =
        raw === null ? empty() : this.#decode(agentId, userKey, raw, "replaced by this change");
      next = { ...change(current), updatedAt: Date.now() };
      return JSON.stringify(next);
    });
    return next;
  }

  #decode(agentId: string, userKey: string, raw: string, what: string): UserAgentSettings {
    const source = { record: "user settings", key: key(agentId, userKey) };
    return readRecord(UserAgentSettings, raw, source, this.log, what) ?? empty();
  }
}
