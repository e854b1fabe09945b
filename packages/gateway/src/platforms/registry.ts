import { LobuError } from "@lobu/core";
import type { Hono } from "hono";
import { createSettingsLink } from "../access/settings-links.ts";
import { userKeyOf } from "../domain/origin.ts";
import { answerRequest } from "../runtime/answers.ts";
import type { SecretRef } from "../secrets/store.ts";
import type { GatewayServices } from "../services.ts";
import { OnceMarkers } from "../store/once.ts";
import type { AdapterContext, PlatformAdapter } from "./shared/adapter.ts";
import { type PlatformRoutes, platformRoutes } from "./shared/routes.ts";
import { SlackAdapter } from "./slack/adapter.ts";
import { slackSettings } from "./slack/config.ts";
import { TelegramAdapter } from "./telegram/adapter.ts";
import { telegramSettings } from "./telegram/config.ts";

const KNOWN_PLATFORMS = ["slack", "telegram"];

/**
 * Builds the platform adapters the configuration and environment ask for
 * ([platforms.*] in lobu.toml, SLACK_* / TELEGRAM_* variables) and starts them.
 */
export function createAdapters(
  services: GatewayServices,
  env: NodeJS.ProcessEnv,
): PlatformAdapter[] {
  const sections = services.config.platforms;
  for (const name of Object.keys(sections)) {
    if (!KNOWN_PLATFORMS.includes(name)) {
      throw new LobuError(
        "config_invalid",
        `lobu.toml: [platforms.${name}] is not a platform this gateway knows`,
        {
          hint: `Supported: ${KNOWN_PLATFORMS.map((p) => `[platforms.${p}]`).join(", ")}.`,
        },
      );
    }
  }
  const adapters: PlatformAdapter[] = [];
  const slack = slackSettings(sections.slack, env);
  if (slack) adapters.push(new SlackAdapter(slack));
  const publicUrlConfigured = Boolean(env.LOBU_PUBLIC_URL || services.config.gateway.public_url);
  const telegram = telegramSettings(sections.telegram, env, { publicUrlConfigured });
  if (telegram) adapters.push(new TelegramAdapter(telegram));
  return adapters;
}

/** Adapter secrets live at installation scope, namespaced per platform. */
function secretRef(platform: string, name: string): SecretRef {
  return { scope: { kind: "installation" }, name: `platform.${platform}.${name}` };
}

/** The context every adapter gets: the gateway's entrance, answers, state and secrets. */
export function adapterContext(
  services: GatewayServices,
  adapter: PlatformAdapter,
  routes: PlatformRoutes,
): AdapterContext {
  const platform = adapter.platform;
  const once = new OnceMarkers(services.store.kv, `platform:${platform}`);
  return {
    routes,
    log: services.log.child({ platform }),
    // A getter: the URL is only known once the server listens (port 0).
    get publicUrl() {
      return services.publicUrl;
    },
    submit: (message) => services.inbound.submit(message),
    answer: async (requestId, answer, who) => {
      const result = await answerRequest(services, requestId, answer, {
        userKey: userKeyOf(who),
        label: `${who.platform}:${who.userName ?? who.userId}`,
        actor: userKeyOf(who),
      });
      return result.ok ? { ok: true } : { ok: false, reason: result.reason };
    },
    settingsLink: (origin) => createSettingsLink(services, origin),
    state: {
      get: (key) => services.store.kv.get(`platform:${platform}:${key}`),
      set: async (key, value, ttlMs) => {
        await services.store.kv.set(
          `platform:${platform}:${key}`,
          value,
          ttlMs ? { ttlMs } : undefined,
        );
      },
      del: async (key) => {
        await services.store.kv.del(`platform:${platform}:${key}`);
      },
      take: (key) => services.store.kv.take(`platform:${platform}:${key}`),
    },
    once: {
      claim: (key, ttlMs) => once.claim(key, ttlMs),
      release: (key) => once.release(key),
    },
    audit: (action, details = {}) =>
      services.audit.record({
        action: `platform.${action}`,
        actor: "unknown",
        details: { platform, ...details },
      }),
    secrets: {
      get: (name) => services.secrets.get(secretRef(platform, name)),
      set: async (name, value) => {
        await services.secrets.set(secretRef(platform, name), value);
      },
      del: async (name) => {
        await services.secrets.delete(secretRef(platform, name));
      },
    },
  };
}

/**
 * Start every adapter; returns them keyed by platform. Their routes go on
 * `app` behind the platform body limit (see shared/routes.ts).
 */
export async function startAdapters(
  services: GatewayServices,
  app: Hono,
  env: NodeJS.ProcessEnv,
): Promise<Map<string, PlatformAdapter>> {
  const started = new Map<string, PlatformAdapter>();
  const routes = platformRoutes(app);
  for (const adapter of createAdapters(services, env)) {
    await adapter.start(adapterContext(services, adapter, routes));
    started.set(adapter.platform, adapter);
  }
  return started;
}
