import type { AmbientSection, ChannelSection } from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import type { Persona } from "../domain/messages.ts";
import type { Origin } from "../domain/origin.ts";
import type { KeyValue } from "../store/port.ts";
import { cacheReads } from "../store/read-cache.ts";
import { readRecord } from "../util/stored-record.ts";
import { channelKeyOf } from "./access.ts";
import type { AgentDefinition } from "./registry.ts";

/** A channel bound to an agent by a channel admin's command (stored as `channel-agent:<channel>`). */
export const StoredBinding = z.object({
  agent: z.string().min(1),
  /** Who bound it (a user key). */
  by: z.string(),
  at: z.number(),
});
export type StoredBinding = z.infer<typeof StoredBinding>;

const bindingKey = (channel: string) => `channel-agent:${channel}`;
// Read for every message: cached until the next write (store/read-cache.ts).
cacheReads("channel-agent:");

/**
 * Per-channel agents (lobu.toml `[channels."<platform>:<workspace>:<channel>"]`):
 * which agent answers in a channel, and what the channel changes for it —
 * persona, system prompt, model and the tool set. The tool set is enforced,
 * not suggested: a tool the channel leaves out is denied by policy, so the
 * worker never offers it and the gateway refuses it (runtime/gateway-tools.ts).
 */
export class ChannelBindings {
  readonly #channels: Map<string, ChannelSection>;
  readonly #kv: Pick<KeyValue, "get" | "set" | "del"> | undefined;
  readonly #log: Logger | undefined;

  constructor(
    channels: Record<string, ChannelSection>,
    stored?: { kv: Pick<KeyValue, "get" | "set" | "del">; log: Logger },
  ) {
    this.#channels = new Map(Object.entries(channels));
    this.#kv = stored?.kv;
    this.#log = stored?.log;
  }

  /** The agent a channel is bound to: by lobu.toml, else by a channel admin's command. */
  async agentFor(
    origin: Pick<Origin, "platform" | "workspace" | "channelId">,
  ): Promise<string | undefined> {
    const configured = this.of(origin)?.agent;
    if (configured || !this.#kv || !this.#log) return configured;
    const key = bindingKey(channelKeyOf(origin));
    const raw = await this.#kv.get(key);
    if (raw === null) return undefined;
    // An unreadable binding binds nothing: the platform's default answers, as before the command.
    return readRecord(StoredBinding, raw, { record: "channel binding", key }, this.#log, "ignored")
      ?.agent;
  }

  /** Record (or with `agent` null, remove) a command's binding. */
  async bind(
    origin: Pick<Origin, "platform" | "workspace" | "channelId">,
    agent: string | null,
    by: string,
  ): Promise<void> {
    if (!this.#kv) return;
    const key = bindingKey(channelKeyOf(origin));
    if (agent === null) await this.#kv.del(key);
    else
      await this.#kv.set(
        key,
        JSON.stringify({ agent, by, at: Date.now() } satisfies StoredBinding),
      );
  }

  /** The channel's section, if lobu.toml has one. */
  of(origin: Pick<Origin, "platform" | "workspace" | "channelId">): ChannelSection | undefined {
    return this.#channels.get(channelKeyOf(origin));
  }

  /** Every bound channel, for the admin UI. */
  list(): { channel: string; section: ChannelSection }[] {
    return [...this.#channels].map(([channel, section]) => ({ channel, section }));
  }

  /** Agents the channels name, for the config's cross-references. */
  agentIds(): { channel: string; agent: string }[] {
    return this.list().flatMap(({ channel, section }) =>
      section.agent ? [{ channel, agent: section.agent }] : [],
    );
  }
}

/** The agent as it acts in one channel: the channel's overrides applied. */
export function inChannel(
  agent: AgentDefinition,
  channel: ChannelSection | undefined,
): AgentDefinition {
  if (!channel) return agent;
  const keep = channel.tools;
  return {
    ...agent,
    ...(channel.system_prompt !== undefined ? { systemPrompt: channel.system_prompt } : {}),
    ...(channel.model !== undefined ? { model: channel.model } : {}),
    ...(channel.persona ? { persona: personaOf(channel.persona) } : {}),
    ...(keep
      ? {
          tools: agent.tools.filter((t) => keep.includes(t)),
          // Narrows what the agent had, never widens it (effectivePolicy denies the rest).
          allowedTools: agent.allowedTools
            ? agent.allowedTools.filter((t) => keep.includes(t))
            : [...keep],
        }
      : {}),
  };
}

export function personaOf(p: {
  name?: string | undefined;
  icon_url?: string | undefined;
}): Persona {
  return { ...(p.name ? { name: p.name } : {}), ...(p.icon_url ? { iconUrl: p.icon_url } : {}) };
}

const QUESTION_WORDS =
  /^(who|what|when|where|why|how|which|whose|whom|can|could|would|should|is|are|do|does|did|will|has|have)\b/i;

/** Whether an ambient rule takes a message that did not mention the agent. */
export function ambientMatches(rule: AmbientSection, text: string): boolean {
  const t = text.trim();
  if (!t) return false;
  switch (rule.mode) {
    case "off":
      return false;
    case "all":
      return true;
    case "questions":
      return t.endsWith("?") || QUESTION_WORDS.test(t);
    case "keywords": {
      const lower = t.toLowerCase();
      return rule.keywords.some((k) => wordIn(lower, k.toLowerCase()));
    }
  }
}

/** `k` as a word (or words) of `text`, not inside another word. */
function wordIn(text: string, k: string): boolean {
  const escaped = k.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(^|[^\\p{L}\\p{N}_])${escaped}($|[^\\p{L}\\p{N}_])`, "u").test(text);
}
