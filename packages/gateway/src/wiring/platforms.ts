import { type LobuConfig, LobuError } from "@lobu/core";
import { bestEffort, type FailureLog } from "@lobu/core/best-effort";
import type { Hono } from "hono";
import type { ConversationHistory } from "../domain/history.ts";
import type { ReplySurface } from "../domain/messages.ts";
import type { SettingsSignIn, SignInDeps } from "../http/sign-in.ts";
import type { AdapterContext, PlatformAdapter } from "../platforms/shared/adapter.ts";
import type { PlatformPlugin, PlatformSetup } from "../platforms/shared/plugin.ts";
import { type PlatformRoutes, platformRoutes } from "../platforms/shared/routes.ts";

/**
 * The chat platforms this gateway runs: the registered plugins' adapters for
 * the platforms the configuration and environment set up ([platforms.*] in
 * lobu.toml, SLACK_* / TELEGRAM_* variables). Built before the turn runner,
 * which looks up where replies go here; started after it, once the HTTP app
 * exists for their routes.
 */
export class Platforms {
  readonly #adapters: PlatformAdapter[];
  readonly #started: PlatformAdapter[] = [];
  readonly #log: FailureLog;

  private constructor(adapters: PlatformAdapter[], log: FailureLog) {
    this.#adapters = adapters;
    this.#log = log;
  }

  /** Build the adapters; an unknown `[platforms.<name>]` section is refused. */
  static create(
    plugins: readonly PlatformPlugin[],
    config: LobuConfig,
    env: NodeJS.ProcessEnv,
    log: FailureLog,
  ): Platforms {
    refuseUnknownSections(plugins, config);
    const adapters: PlatformAdapter[] = [];
    for (const plugin of plugins) {
      const adapter = plugin.create(setupOf(plugin, config, env));
      if (adapter) adapters.push(adapter);
    }
    return new Platforms(adapters, log);
  }

  /** The platforms set up here, in start order. */
  get names(): string[] {
    return this.#adapters.map((a) => a.platform);
  }

  /** Where replies to `platform` go (the turn runner's lookup). */
  replySurfaceFor(platform: string): ReplySurface | undefined {
    return this.#adapters.find((a) => a.platform === platform);
  }

  /** The history of `platform`'s conversations, when its adapter keeps or reads one. */
  historyFor(platform: string): ConversationHistory | undefined {
    return this.#adapters.find((a) => a.platform === platform)?.history;
  }

  /**
   * Start every adapter with its context. Their routes go on `app` behind the
   * platform body limit (see platforms/shared/routes.ts).
   */
  async start(
    app: Hono,
    contextFor: (platform: string, routes: PlatformRoutes) => AdapterContext,
  ): Promise<void> {
    const routes = platformRoutes(app);
    for (const adapter of this.#adapters) {
      await adapter.start(contextFor(adapter.platform, routes));
      this.#started.push(adapter);
    }
  }

  /** Stop the adapters that started (a failed stop does not keep the others running). */
  async stop(): Promise<void> {
    for (const adapter of this.#started.splice(0)) {
      const lost = bestEffort(this.#log, "platform adapter did not stop cleanly", {
        platform: adapter.platform,
      });
      await adapter.stop().catch(lost);
    }
  }
}

const UNSTARTED: FailureLog = { debug() {}, warn() {}, error() {} };

/**
 * The platforms lobu.toml and the environment set up, checked as `lobu run`
 * checks them (unknown sections, each platform's strict schema, its tokens)
 * without starting any: for `lobu doctor`. Throws what `lobu run` would.
 */
export function platformsSetUp(
  plugins: readonly PlatformPlugin[],
  config: LobuConfig,
  env: NodeJS.ProcessEnv,
): string[] {
  return Platforms.create(plugins, config, env, UNSTARTED).names;
}

/** The platforms' own ways into the settings page (Telegram's Mini App), from their plugins. */
export function settingsSignIns(
  plugins: readonly PlatformPlugin[],
  config: LobuConfig,
  env: NodeJS.ProcessEnv,
  deps: (platform: string) => SignInDeps,
): SettingsSignIn[] {
  return plugins.flatMap((plugin) =>
    plugin.settingsSignIn
      ? [plugin.settingsSignIn(setupOf(plugin, config, env), deps(plugin.id))]
      : [],
  );
}

function setupOf(
  plugin: PlatformPlugin,
  config: LobuConfig,
  env: NodeJS.ProcessEnv,
): PlatformSetup {
  return {
    section: config.platforms[plugin.id],
    env,
    publicUrlConfigured: Boolean(env.LOBU_PUBLIC_URL || config.gateway.public_url),
    channels: config.channels,
  };
}

function refuseUnknownSections(plugins: readonly PlatformPlugin[], config: LobuConfig): void {
  const known = plugins.map((p) => p.id);
  for (const name of Object.keys(config.platforms)) {
    if (!known.includes(name)) {
      throw new LobuError(
        "config_invalid",
        `lobu.toml: [platforms.${name}] is not a platform this gateway knows`,
        { hint: `Supported: ${known.map((p) => `[platforms.${p}]`).join(", ")}.` },
      );
    }
  }
}
