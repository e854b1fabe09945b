import type { SettingsSignIn, SignInDeps } from "../../http/sign-in.ts";
import type { PlatformAdapter } from "./adapter.ts";

/** What a platform is set up from. */
export interface PlatformSetup {
  /** `[platforms.<id>]` as written in lobu.toml; undefined when there is none. */
  section: Record<string, unknown> | undefined;
  env: NodeJS.ProcessEnv;
  /** A public URL is configured (LOBU_PUBLIC_URL or gateway.public_url): webhooks can be used. */
  publicUrlConfigured: boolean;
  /** lobu.toml `[channels.*]`, for the rules a platform puts on its channels' agents. */
  channels?: Record<string, { agent?: string | undefined }>;
}

/**
 * A chat platform, as the gateway registers it (platforms/index.ts). The
 * plugin reads its own `[platforms.<id>]` section (with its strict schema) and
 * environment, and returns nothing when the platform is not set up; the
 * gateway starts the adapter with an AdapterContext, its only way in.
 */
export interface PlatformPlugin {
  /** `[platforms.<id>]`, the `platform` of its origins and user keys. */
  readonly id: string;
  /** The adapter, or undefined when this platform is not set up here. Throws on a bad setup. */
  create(setup: PlatformSetup): PlatformAdapter | undefined;
  /** The platform's own way into the settings page, if it has one (Telegram's Mini App). */
  settingsSignIn?(setup: PlatformSetup, deps: SignInDeps): SettingsSignIn;
}
