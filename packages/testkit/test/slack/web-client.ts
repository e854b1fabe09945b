import { type Logger, LogLevel, type WebAPIPlatformError, WebClient } from "@slack/web-api";
import type { SlackEmulator } from "../../src/platforms.ts";

/** WebClient logs every platform error; the tests provoke plenty on purpose. */
const quiet: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  setLevel: () => {},
  getLevel: () => LogLevel.ERROR,
  setName: () => {},
};

/** The official client against the emulator: no retries, no logging. */
export function emulatorClient(
  emu: SlackEmulator,
  token: string,
  extra: ConstructorParameters<typeof WebClient>[1] = {},
): WebClient {
  return new WebClient(token, {
    slackApiUrl: emu.apiUrl,
    retryConfig: { retries: 0 },
    logger: quiet,
    ...extra,
  });
}

/** The error a call that must fail fails with. */
export async function platformError(promise: Promise<unknown>): Promise<WebAPIPlatformError> {
  try {
    await promise;
  } catch (err) {
    return err as WebAPIPlatformError;
  }
  throw new Error("expected the call to fail");
}
