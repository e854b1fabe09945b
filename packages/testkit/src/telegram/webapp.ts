/**
 * Mini App initData as Telegram builds it: a query string whose `hash` is
 * hex(HMAC_SHA256(key = HMAC_SHA256(key = "WebAppData", msg = bot_token),
 * msg = data_check_string)), the data_check_string being every other field as
 * "key=value", sorted by key and joined with "\n".
 *
 * Deliberately independent of the gateway's verifier
 * (gateway/src/platforms/telegram/init-data.ts): an emulator that shared its
 * code would agree with any mistake in it, and the tests would prove nothing.
 */
import { createHmac, randomBytes } from "node:crypto";

export interface WebAppUser {
  id: number;
  first_name: string;
  last_name?: string;
  username?: string;
  language_code?: string;
  is_premium?: boolean;
  allows_write_to_pm?: boolean;
  photo_url?: string;
}

export interface WebAppInitDataInput {
  user: WebAppUser;
  /** Unix seconds; default now. Pass an old value to forge stale data. */
  authDate?: number;
  /** Present when the Mini App was opened from an inline button / menu (answerWebAppQuery). */
  queryId?: string;
  chatType?: "sender" | "private" | "group" | "supergroup" | "channel";
  chatInstance?: string;
  startParam?: string;
  /** Sign with this token instead of the bot's (forgery). */
  botToken?: string;
  /** Overwrite fields after signing (forgery: the hash no longer matches). */
  tamper?: Record<string, string>;
  /** Leave the hash out. */
  omitHash?: boolean;
}

export function webAppDataCheckString(fields: Record<string, string>): string {
  return Object.keys(fields)
    .filter((k) => k !== "hash")
    .sort()
    .map((k) => `${k}=${fields[k]}`)
    .join("\n");
}

export function webAppHash(botToken: string, fields: Record<string, string>): string {
  const secret = createHmac("sha256", "WebAppData").update(botToken).digest();
  return createHmac("sha256", secret).update(webAppDataCheckString(fields)).digest("hex");
}

export function signWebAppInitData(botToken: string, input: WebAppInitDataInput): string {
  const fields: Record<string, string> = {};
  fields.query_id = input.queryId ?? `AA${randomBytes(12).toString("base64url")}`;
  fields.user = JSON.stringify({
    allows_write_to_pm: true,
    ...input.user,
  });
  if (input.chatInstance) fields.chat_instance = input.chatInstance;
  if (input.chatType) fields.chat_type = input.chatType;
  if (input.startParam) fields.start_param = input.startParam;
  fields.auth_date = String(input.authDate ?? Math.floor(Date.now() / 1000));
  fields.hash = webAppHash(input.botToken ?? botToken, fields);
  Object.assign(fields, input.tamper);
  if (input.omitHash) delete fields.hash;
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join("&");
}
