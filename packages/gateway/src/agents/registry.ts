import {
  type AgentSection,
  BUILTIN_TOOLS,
  DomainPattern,
  isValidAgentId,
  type LobuConfig,
  LobuError,
  ToolPolicy,
} from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import type { Origin } from "../domain/origin.ts";
import type { KeyValue } from "../store/port.ts";
import { cacheReads } from "../store/read-cache.ts";
import { decodeRecord, logUnreadable } from "../util/stored-record.ts";
import { AccessPolicy, accessFromSection } from "./access.ts";
import { ChannelBindings, inChannel, personaOf } from "./channels.ts";

// Read several times for every message: cached until the next write (store/read-cache.ts).
cacheReads("agent:");

/** An agent as the gateway uses it (camelCase; from lobu.toml or the API, stored as `agent:<id>`). */
export const AgentDefinition = z.object({
  id: z.string().min(1),
  name: z.string(),
  description: z.string(),
  provider: z.string().optional(),
  model: z.string().optional(),
  systemPrompt: z.string().optional(),
  tools: z.array(z.string()),
  skills: z.array(z.string()),
  groupRouting: z.enum(["per-user", "per-channel"]),
  network: z.object({ allow: z.array(z.string()), deny: z.array(z.string()) }),
  policy: z.object({
    default: ToolPolicy,
    tools: z.record(z.string(), ToolPolicy),
    requestTimeoutMs: z.number(),
  }),
  /** Env var → secret binding exposed to the agent's shell as placeholders. */
  secrets: z.record(
    z.string(),
    z.object({
      secret: z.string(),
      hosts: z.array(z.string()),
      locations: z.array(z.enum(["header", "url", "body"])),
    }),
  ),
  /** Who may use the agent (agents/access.ts); absent: everyone, outside external channels. */
  access: AccessPolicy.optional(),
  /** The name and picture replies carry, where the platform allows it. */
  persona: z.object({ name: z.string().optional(), iconUrl: z.string().optional() }).optional(),
  /** Channel admins may bind channels to it with a command (lobu.toml `bindable`). */
  bindable: z.boolean().optional(),
  /** Set in a channel with its own tool set (agents/channels.ts): every other tool is denied. */
  allowedTools: z.array(z.string()).optional(),
  /** `config` agents are defined in lobu.toml and read-only through the API. */
  source: z.enum(["config", "api", "implicit"]),
  createdAt: z.number(),
  updatedAt: z.number(),
});
export type AgentDefinition = z.infer<typeof AgentDefinition>;

const KeyList = z
  .array(
    z
      .string()
      .max(300)
      .regex(/^[a-z0-9_-]+:[^:]*:.+$/),
  )
  .max(10_000);
const AccessListInput = z.strictObject({
  users: KeyList.default([]),
  groups: KeyList.default([]),
  emailDomains: z.array(DomainPattern).max(1_000).default([]),
  channels: KeyList.default([]),
});
/** `access` in an agent's body: the whole rule set (docs/admin.md, Access control). */
const AccessInput = z.strictObject({
  allow: AccessListInput.prefault({}),
  deny: AccessListInput.prefault({}),
  directMessages: z.boolean().default(true),
  guests: z.boolean().default(false),
  externalChannels: KeyList.default([]),
});

/** Body of POST /api/v1/agents and PATCH /api/v1/agents/:id. */
export const AgentInput = z.strictObject({
  id: z.string().refine(isValidAgentId, "use lower-case letters, digits, '-' and '_' (max 63)"),
  name: z.string().min(1).max(80).optional(),
  description: z.string().max(500).optional(),
  provider: z.string().max(63).optional(),
  model: z.string().max(200).optional(),
  systemPrompt: z.string().max(100_000).optional(),
  tools: z.array(z.enum(BUILTIN_TOOLS)).optional(),
  skills: z.array(z.string().max(63)).max(100).optional(),
  groupRouting: z.enum(["per-user", "per-channel"]).optional(),
  network: z
    .strictObject({
      allow: z.array(z.string()).max(500).optional(),
      deny: z.array(z.string()).max(500).optional(),
    })
    .optional(),
  secrets: z
    .record(
      z.string().regex(/^[A-Z_][A-Z0-9_]{0,63}$/),
      z.strictObject({
        secret: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/),
        hosts: z.array(z.string()).min(1).max(50),
        locations: z
          .array(z.enum(["header", "url", "body"]))
          .min(1)
          .optional(),
      }),
    )
    .optional(),
  policy: z
    .strictObject({
      default: ToolPolicy.optional(),
      tools: z.record(z.string(), ToolPolicy).optional(),
      requestTimeoutSec: z.number().int().positive().max(86_400).optional(),
    })
    .optional(),
  access: AccessInput.optional(),
  persona: z
    .strictObject({
      name: z.string().min(1).max(80).optional(),
      iconUrl: z.url().max(2_000).optional(),
    })
    .optional(),
});
export type AgentInput = z.infer<typeof AgentInput>;
export const AgentPatch = AgentInput.omit({ id: true }).partial();
export type AgentPatch = z.infer<typeof AgentPatch>;

const DEFAULT_AGENT_ID = "default";

function fromSection(id: string, s: AgentSection): AgentDefinition {
  return {
    id,
    name: s.name ?? id,
    description: s.description,
    provider: s.provider,
    model: s.model,
    systemPrompt: s.system_prompt,
    tools: [...s.tools],
    skills: [...s.skills],
    groupRouting: s.group_routing,
    network: { allow: [...s.network.allow], deny: [...s.network.deny] },
    policy: {
      default: s.policy.default,
      tools: { ...s.policy.tools },
      requestTimeoutMs: s.policy.request_timeout,
    },
    secrets: structuredClone(s.secrets),
    access: accessFromSection(s.access),
    ...(s.bindable ? { bindable: true } : {}),
    ...(s.persona ? { persona: personaOf(s.persona) } : {}),
    source: "config",
    createdAt: 0,
    updatedAt: 0,
  };
}

function applyPatch(base: AgentDefinition, patch: AgentPatch): AgentDefinition {
  return {
    ...base,
    ...(patch.name !== undefined ? { name: patch.name } : {}),
    ...(patch.description !== undefined ? { description: patch.description } : {}),
    ...(patch.provider !== undefined ? { provider: patch.provider } : {}),
    ...(patch.model !== undefined ? { model: patch.model } : {}),
    ...(patch.systemPrompt !== undefined ? { systemPrompt: patch.systemPrompt } : {}),
    ...(patch.tools !== undefined ? { tools: patch.tools } : {}),
    ...(patch.skills !== undefined ? { skills: patch.skills } : {}),
    ...(patch.groupRouting !== undefined ? { groupRouting: patch.groupRouting } : {}),
    ...(patch.access !== undefined ? { access: patch.access } : {}),
    ...(patch.persona !== undefined ? { persona: patch.persona } : {}),
    ...(patch.secrets !== undefined
      ? {
          secrets: Object.fromEntries(
            Object.entries(patch.secrets).map(([k, v]) => [
              k,
              { ...v, locations: v.locations ?? ["header"] },
            ]),
          ),
        }
      : {}),
    network: {
      allow: patch.network?.allow ?? base.network.allow,
      deny: patch.network?.deny ?? base.network.deny,
    },
    policy: {
      default: patch.policy?.default ?? base.policy.default,
      tools: patch.policy?.tools ?? base.policy.tools,
      requestTimeoutMs:
        patch.policy?.requestTimeoutSec !== undefined
          ? patch.policy.requestTimeoutSec * 1000
          : base.policy.requestTimeoutMs,
    },
    updatedAt: Date.now(),
  };
}

function blank(id: string, source: AgentDefinition["source"]): AgentDefinition {
  const now = Date.now();
  return {
    id,
    name: id,
    description: "",
    tools: [...BUILTIN_TOOLS],
    skills: [],
    groupRouting: "per-user",
    network: { allow: [], deny: [] },
    policy: { default: "allow", tools: {}, requestTimeoutMs: 900_000 },
    secrets: {},
    source,
    createdAt: now,
    updatedAt: now,
  };
}

/**
 * Agents come from lobu.toml (read-only) and from the API (stored). With none
 * defined at all, an implicit `default` agent exists so a fresh install works.
 */
export class AgentRegistry {
  private readonly kv: KeyValue;
  private readonly log: Logger;
  private readonly configured: Map<string, AgentDefinition>;
  /** `[channels.*]`: per-channel agents and their overrides. */
  readonly channels: ChannelBindings;

  constructor(kv: KeyValue, config: LobuConfig, log: Logger) {
    this.kv = kv;
    this.log = log;
    this.channels = new ChannelBindings(config.channels, { kv, log });
    this.configured = new Map(
      Object.entries(config.agents).map(([id, s]) => [id, fromSection(id, s)]),
    );
  }

  async list(): Promise<AgentDefinition[]> {
    const stored = (await this.kv.list("agent:")).flatMap((e) => {
      const decoded = decodeRecord(AgentDefinition, e.value);
      if (decoded.ok) return [decoded.record];
      logUnreadable(
        this.log,
        { record: "agent", key: e.key },
        decoded.reason,
        "left out of the list",
      );
      return [];
    });
    const all = [...this.configured.values(), ...stored.filter((a) => !this.configured.has(a.id))];
    if (all.length === 0) return [blank(DEFAULT_AGENT_ID, "implicit")];
    return all.sort((a, b) => a.id.localeCompare(b.id));
  }

  async get(id: string): Promise<AgentDefinition | undefined> {
    const configured = this.configured.get(id);
    if (configured) return configured;
    const raw = await this.kv.get(`agent:${id}`);
    if (raw) return this.#stored(id, raw);
    if (
      id === DEFAULT_AGENT_ID &&
      this.configured.size === 0 &&
      (await this.kv.list("agent:", { limit: 1 })).length === 0
    ) {
      return blank(DEFAULT_AGENT_ID, "implicit");
    }
    return undefined;
  }

  async require(id: string): Promise<AgentDefinition> {
    const agent = await this.get(id);
    if (!agent) {
      throw new LobuError("agent_not_found", `no agent "${id}"`, {
        status: 404,
        hint: "List agents with GET /api/v1/agents, or create one with POST /api/v1/agents.",
      });
    }
    return agent;
  }

  /**
   * The agent that answers a message: the one its channel is bound to
   * (`[channels.*] agent`), else the one the platform named, else the default.
   */
  async forMessage(origin: Origin, named: string | undefined): Promise<AgentDefinition> {
    const bound = (await this.channels.agentFor(origin)) ?? named;
    return bound ? this.require(bound) : this.defaultAgent();
  }

  /**
   * A channel admin binds a channel to an agent (or, with null, unbinds it),
   * after their platform said they administer it. Only agents that allow it
   * (`bindable`), and never over a binding lobu.toml makes.
   */
  async bindChannel(origin: Origin, agentId: string | null, by: string): Promise<void> {
    if (this.channels.of(origin)?.agent) {
      throw new LobuError(
        "binding_read_only",
        "this channel is bound to an agent in lobu.toml; only the operator can change that",
        { hint: "Ask the operator to change [channels.*] in lobu.toml." },
      );
    }
    if (agentId !== null) {
      const agent = await this.get(agentId);
      if (!agent?.bindable) {
        throw new LobuError(
          "forbidden",
          `there is no agent "${agentId}" that channel admins may bind`,
          {
            hint: "An operator can allow it with bindable = true under [agents.<id>] in lobu.toml.",
          },
        );
      }
    }
    await this.channels.bind(origin, agentId, by);
  }

  /** The agent as it acts in the turn's channel (its persona, prompt, model and tool set). */
  async forTurn(agentId: string, origin: Origin): Promise<AgentDefinition> {
    return inChannel(await this.require(agentId), this.channels.of(origin));
  }

  /** The agent used when a platform or request does not name one. */
  async defaultAgent(): Promise<AgentDefinition> {
    const agents = await this.list();
    return agents.find((a) => a.id === DEFAULT_AGENT_ID) ?? agents[0]!;
  }

  async create(input: AgentInput): Promise<AgentDefinition> {
    if (this.configured.has(input.id)) {
      throw new LobuError("agent_exists", `agent "${input.id}" is defined in lobu.toml`, {
        status: 409,
      });
    }
    const agent = applyPatch(blank(input.id, "api"), input);
    const created = await this.kv.set(`agent:${input.id}`, JSON.stringify(agent), {
      ifNotExists: true,
    });
    if (!created)
      throw new LobuError("agent_exists", `agent "${input.id}" already exists`, { status: 409 });
    return agent;
  }

  async update(id: string, patch: AgentPatch): Promise<AgentDefinition> {
    if (this.configured.has(id)) {
      throw new LobuError(
        "agent_read_only",
        `agent "${id}" is defined in lobu.toml; edit the file instead`,
        {
          status: 409,
        },
      );
    }
    let next: AgentDefinition | undefined;
    await this.kv.update(`agent:${id}`, (raw) => {
      next = raw === null ? undefined : applyPatch(this.#stored(id, raw), patch);
      return next && JSON.stringify(next);
    });
    return next ?? this.require(id).then(() => this.create({ id, ...patch }));
  }

  async delete(id: string): Promise<void> {
    if (this.configured.has(id)) {
      throw new LobuError(
        "agent_read_only",
        `agent "${id}" is defined in lobu.toml; remove it there`,
        { status: 409 },
      );
    }
    if (!(await this.kv.del(`agent:${id}`))) await this.require(id);
  }

  /**
   * A stored agent, or `record_unreadable` (logged) when its record is not
   * one: an agent that exists but cannot be used is neither "not found" nor
   * run with a guessed definition.
   */
  #stored(id: string, raw: string): AgentDefinition {
    const decoded = decodeRecord(AgentDefinition, raw);
    if (decoded.ok) return decoded.record;
    const source = { record: "agent", key: `agent:${id}` };
    logUnreadable(
      this.log,
      source,
      decoded.reason,
      "refused until it is deleted and created again",
    );
    throw new LobuError(
      "record_unreadable",
      `the stored definition of agent "${id}" is unreadable (${decoded.reason})`,
      {
        status: 500,
        hint: `It is corrupt or was written by an incompatible version. Delete it (DELETE /api/v1/agents/${id}) and create it again.`,
      },
    );
  }
}
