import { describeIssues, LobuError } from "@lobu/core";
import type { z } from "zod";

/**
 * Validate a `[platforms.<name>]` section of lobu.toml with the adapter's
 * schema; errors name the full key (`platforms.slack.mode: ...`).
 */
export function parsePlatformSection<S extends z.ZodType>(
  platform: string,
  schema: S,
  section: Record<string, unknown> | undefined,
): z.infer<S> {
  const result = schema.safeParse(section ?? {});
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => ({
    ...issue,
    path: ["platforms", platform, ...issue.path],
  }));
  throw new LobuError("config_invalid", describeIssues("lobu.toml", issues), {
    hint: `See docs/platforms/${platform}.md for the [platforms.${platform}] keys.`,
  });
}

/** A platform is misconfigured in a way only the environment can fix. */
export function platformSetupError(platform: string, message: string, hint: string): LobuError {
  return new LobuError("platform_config", `${platform}: ${message}`, {
    hint: `${hint} See docs/platforms/${platform}.md.`,
  });
}

/** An API base URL from the environment (tests, local servers): http(s) or a setup error. */
export function apiBaseUrl(platform: string, variable: string, value: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
    throw platformSetupError(
      platform,
      `${variable} is not an http(s) URL: ${JSON.stringify(value)}`,
      `Unset it to use the real API, or set it to the API's base URL.`,
    );
  }
  return value;
}
