import type { ToolPolicy } from "@lobu/core";
import type { KeyValue } from "../store/port.ts";

/**
 * What a person changed for their own agent (from the settings page or by
 * approving an agent's request). Layered over the agent definition: users can
 * add domains and skills and answer "ask" policies, never loosen a "deny".
 */
export interface UserAgentSettings {
  provider?: string;
  model?: string;
  skills: string[];
  domains: string[];
  packages: string[];
  mcp: string[];
  toolPolicy: Record<string, ToolPolicy>;
  updatedAt: number;
}

const empty = (): UserAgentSettings => ({
  skills: [],
  domains: [],
  packages: [],
  mcp: [],
  toolPolicy: {},
  updatedAt: 0,
});

const key = (agentId: string, userKey: string) => `usettings:${agentId}:${userKey}`;

export class UserSettingsStore {
  private readonly kv: KeyValue;

  constructor(kv: KeyValue) {
    this.kv = kv;
  }

  async get(agentId: string, userKey: string): Promise<UserAgentSettings> {
    const raw = await this.kv.get(key(agentId, userKey));
    return raw ? { ...empty(), ...(JSON.parse(raw) as Partial<UserAgentSettings>) } : empty();
  }

  /** Read-modify-write with compare-and-set, so two tabs saving at once both land. */
  async update(
    agentId: string,
    userKey: string,
    change: (current: UserAgentSettings) => UserAgentSettings,
  ): Promise<UserAgentSettings> {
    for (let i = 0; i < 20; i++) {
      const raw = await this.kv.get(key(agentId, userKey));
      const current = raw
        ? { ...empty(), ...(JSON.parse(raw) as Partial<UserAgentSettings>) }
        : empty();
      const next = { ...change(current), updatedAt: Date.now() };
      if (await this.kv.compareAndSet(key(agentId, userKey), raw, JSON.stringify(next)))
        return next;
    }
    throw new Error("settings changed concurrently too many times; retry");
  }
}
