import { createHmac, timingSafeEqual } from "node:crypto";

/** The `user` field of Mini App initData. */
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

export type InitDataResult =
  | {
      ok: true;
      user: WebAppUser;
      /** Unix seconds when Telegram signed the data. */
      authDate: number;
      queryId?: string;
      chatType?: string;
      chatInstance?: string;
      startParam?: string;
    }
  | { ok: false; reason: string };

/** Telegram's clock and ours may differ a little; data from further in the future is refused. */
const FUTURE_SKEW_SEC = 60;

/**
 * Verify Mini App initData as Telegram specifies: secret_key =
 * HMAC_SHA256(key "WebAppData", bot_token); the hash must equal hex
 * HMAC_SHA256(secret_key, data_check_string), where data_check_string is
 * every other field as `key=value`, sorted by key, joined with "\n". The
 * comparison is constant-time; data older than `maxAgeSec` is refused.
 * `now` is in unix seconds (default: the current time).
 *
 * The testkit's Telegram emulator signs initData with its own code
 * (testkit/src/telegram/webapp.ts) on purpose: sharing one implementation
 * would let a mistake in it pass both sides of the test.
 */
export function verifyInitData(
  initData: string,
  botToken: string,
  opts: { maxAgeSec: number; now?: number },
): InitDataResult {
  if (!initData) return { ok: false, reason: "initData is empty" };
  const fields = new Map<string, string>();
  for (const [key, value] of new URLSearchParams(initData)) {
    if (fields.has(key)) return { ok: false, reason: `field "${key}" appears twice` };
    fields.set(key, value);
  }
  const hash = fields.get("hash");
  if (!hash || !/^[0-9a-f]{64}$/i.test(hash))
    return { ok: false, reason: "hash is missing or malformed" };
  fields.delete("hash");
  const dataCheckString = [...fields.keys()]
    .sort()
    .map((key) => `${key}=${fields.get(key)}`)
    .join("\n");
  const secretKey = createHmac("sha256", "WebAppData").update(botToken).digest();
  const expected = createHmac("sha256", secretKey).update(dataCheckString).digest();
  if (!timingSafeEqual(expected, Buffer.from(hash, "hex")))
    return { ok: false, reason: "hash does not match (not signed with this bot's token)" };

  const authDate = Number(fields.get("auth_date"));
  if (!Number.isInteger(authDate) || authDate <= 0)
    return { ok: false, reason: "auth_date is missing" };
  const now = Math.floor(opts.now ?? Date.now() / 1000);
  if (now - authDate > opts.maxAgeSec)
    return { ok: false, reason: "initData is too old; reopen the Mini App" };
  if (authDate - now > FUTURE_SKEW_SEC) return { ok: false, reason: "auth_date is in the future" };

  let user: WebAppUser;
  try {
    user = JSON.parse(fields.get("user") ?? "") as WebAppUser;
  } catch {
    return { ok: false, reason: "user is missing or not JSON" };
  }
  if (typeof user !== "object" || user === null || !Number.isSafeInteger(user.id))
    return { ok: false, reason: "user has no id" };
  const optional = (key: string) => fields.get(key) || undefined;
  const queryId = optional("query_id");
  const chatType = optional("chat_type");
  const chatInstance = optional("chat_instance");
  const startParam = optional("start_param");
  return {
    ok: true,
    user,
    authDate,
    ...(queryId ? { queryId } : {}),
    ...(chatType ? { chatType } : {}),
    ...(chatInstance ? { chatInstance } : {}),
    ...(startParam ? { startParam } : {}),
  };
}
