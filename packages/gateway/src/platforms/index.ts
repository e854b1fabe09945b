import { discord } from "./discord/index.ts";
import { googlechat } from "./googlechat/index.ts";
import type { PlatformPlugin } from "./shared/plugin.ts";
import { slack } from "./slack/index.ts";
import { teams } from "./teams/index.ts";
import { telegram } from "./telegram/index.ts";
import { whatsapp } from "./whatsapp/index.ts";

/**
 * Every chat platform this gateway knows, in the order they start. A new
 * platform is its folder (platforms/<id>/, built on platforms/shared/) and
 * one line here.
 */
export const PLATFORMS: readonly PlatformPlugin[] = [
  slack,
  telegram,
  whatsapp,
  discord,
  teams,
  googlechat,
];
