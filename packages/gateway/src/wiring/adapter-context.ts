import { isLobuError, type LobuConfig } from "@lobu/core";
import type { Logger } from "pino";
import { mayOpenAdminUi } from "../access/permissions.ts";
import type { SettingsLinks } from "../access/settings-links.ts";
import { channelKeyOf } from "../agents/access.ts";
import type { AgentRegistry } from "../agents/registry.ts";
import type { AuditLog } from "../audit/log.ts";
import type { Inbound } from "../conversations/inbound.ts";
import { userKeyOf } from "../domain/origin.ts";
import type { PersonDataKind } from "../domain/person-data.ts";
import type { PublicUrl } from "../http/public-url.ts";
import type { AdapterContext } from "../platforms/shared/adapter.ts";
import type { PlatformRoutes } from "../platforms/shared/routes.ts";
import type { AnswerRequest } from "../runtime/answers.ts";
import { stopSummary, type TurnStops } from "../runtime/stops.ts";
import type { SecretRef, SecretStore } from "../secrets/store.ts";
import { OnceMarkers } from "../store/once.ts";
import type { KeyValue } from "../store/port.ts";
import { scanKeys } from "../store/scan.ts";

/** What the gateway lends its chat platforms (each gets a context namespaced to it). */
export interface AdapterContextDeps {
  log: Logger;
  publicUrl: Pick<PublicUrl, "value">;
  kv: KeyValue;
  streams: Pick<import("../store/port.ts").EventStreams, "append" | "revRange">;
  inbound: Pick<Inbound, "submit" | "refusal">;
  answer: AnswerRequest;
  /** Which conversation a chat's `stop` names (as a message from there would be routed). */
  route: Pick<Inbound, "conversationOf">;
  stops: Pick<TurnStops, "stop">;
  /** `[admin] users` may stop anyone's turn. */
  config: Pick<LobuConfig, "admin">;
  settingsLinks: Pick<SettingsLinks, "create">;
  audit: Pick<AuditLog, "record" | "recordRefusal">;
  secrets: Pick<SecretStore, "get" | "set" | "delete">;
  agents: Pick<AgentRegistry, "bindChannel">;
}

/** Adapter secrets live at installation scope, namespaced per platform. */
function secretRef(platform: string, name: string): SecretRef {
  return { scope: { kind: "installation" }, name: `platform.${platform}.${name}` };
}

/**
 * The context an adapter gets: the gateway's entrance, answers, settings
 * links, its own state and secrets. It is a platform's only way into the
 * gateway: platform code imports nothing from the runtime.
 */
export function adapterContext(
  deps: AdapterContextDeps,
  platform: string,
  routes: PlatformRoutes,
): AdapterContext {
  const { kv } = deps;
  const once = new OnceMarkers(kv, `platform:${platform}`);
  return {
    routes,
    log: deps.log.child({ platform }),
    // Read when a link is made: with port 0 the URL is known only once the server listens.
    get publicUrl() {
      return deps.publicUrl.value;
    },
    submit: (message) => deps.inbound.submit(message),
    accessRefusal: async (message) => {
      const refusal = await deps.inbound.refusal(message);
      return refusal && { reason: refusal.reason, message: refusal.message };
    },
    answer: async (requestId, answer, who) => {
      const result = await deps.answer(requestId, answer, {
        userKey: userKeyOf(who),
        label: `${who.platform}:${who.userName ?? who.userId}`,
        actor: userKeyOf(who),
      });
      return result.ok ? { ok: true } : { ok: false, reason: result.reason };
    },
    stop: async ({ who, target, clearQueue }) => {
      const userKey = userKeyOf(who);
      const by = {
        userKey,
        admin: mayOpenAdminUi(deps.config, userKey),
        label: who.userName ?? who.userId,
        actor: userKey,
      };
      try {
        const where =
          "messageId" in target
            ? target
            : { conversationId: await deps.route.conversationOf(target) };
        return { ok: true, text: stopSummary(await deps.stops.stop(where, by, { clearQueue })) };
      } catch (err) {
        if (isLobuError(err) && err.status < 500) return { ok: false, text: err.message };
        throw err;
      }
    },
    settingsLink: (origin) => deps.settingsLinks.create(origin),
    bindChannel: async (origin, agentId) => {
      const actor = userKeyOf(origin);
      await deps.agents.bindChannel(origin, agentId, actor);
      deps.audit.record({
        action: agentId ? "channel.bound" : "channel.unbound",
        actor,
        ...(agentId ? { agentId } : {}),
        details: { channel: channelKeyOf(origin) },
      });
    },
    state: {
      get: (key) => kv.get(`platform:${platform}:${key}`),
      set: async (key, value, ttlMs) => {
        await kv.set(`platform:${platform}:${key}`, value, ttlMs ? { ttlMs } : undefined);
      },
      del: async (key) => {
        await kv.del(`platform:${platform}:${key}`);
      },
      take: (key) => kv.take(`platform:${platform}:${key}`),
    },
    logs: {
      append: (name, data, opts) => deps.streams.append(`platform:${platform}:${name}`, data, opts),
      newest: (name, opts) => deps.streams.revRange(`platform:${platform}:${name}`, opts),
    },
    once: {
      claim: (key, ttlMs) => once.claim(key, ttlMs),
      release: (key) => once.release(key),
    },
    // A refused request (`*_refused`: a replayed or stale copy) can be repeated at will: paced.
    audit: (action, details = {}) =>
      deps.audit[action.endsWith("_refused") ? "recordRefusal" : "record"]({
        action: `platform.${action}`,
        actor: "unknown",
        details: { platform, ...details },
      }),
    secrets: {
      get: (name) => deps.secrets.get(secretRef(platform, name)),
      set: async (name, value) => {
        await deps.secrets.set(secretRef(platform, name), value);
      },
      del: async (name) => {
        await deps.secrets.delete(secretRef(platform, name));
      },
    },
  };
}

/**
 * A platform's state keyed by a person: a key under `platform:<their
 * platform>:` whose segments hold their workspace and end with their user id
 * (Slack's follow-up thread markers, `thread:<team>:<channel>:<ts>:<user>`).
 * Only on platforms with workspaces: a bare trailing id could be anything's.
 * Markers hold nothing but their key; they are erased, not exported.
 */
export function platformStateData(kv: KeyValue): PersonDataKind {
  return {
    name: "platformState",
    export: async () => undefined,
    erase: async (p) => {
      let markers = 0;
      if (!p.workspace) return { markers };
      for await (const { key } of scanKeys(kv, `platform:${p.platform}:`)) {
        const parts = key.split(":");
        if (parts.at(-1) === p.userId && parts.includes(p.workspace) && (await kv.del(key)))
          markers++;
      }
      return { markers };
    },
  };
}
