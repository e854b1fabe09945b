import { safeEqual } from "../../../util/safe-equal.ts";

/**
 * Telegram proves a webhook call with the secret token given to setWebhook,
 * sent back in X-Telegram-Bot-Api-Secret-Token (there is no signature over
 * the body). Checked in constant time, before the body is read.
 */
export function secretTokenMatches(header: string | undefined, secret: string): boolean {
  return safeEqual(header ?? "", secret);
}

/** Telegram's rule for a webhook secret token (setWebhook's secret_token). */
export const SECRET_TOKEN_PATTERN = /^[A-Za-z0-9_-]{1,256}$/;
