import { createHmac, timingSafeEqual } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTelegramEmulator, type TelegramEmulator } from "../../src/platforms.ts";

const TOKEN = "777000222:AAF-webapp-secret-token-00000000";
let emu: TelegramEmulator;

/** Telegram's documented check, written without the emulator's helpers. */
function validate(
  initData: string,
  botToken: string,
  maxAgeSec = 3600,
): { ok: boolean; user?: unknown } {
  const params = new URLSearchParams(initData);
  const hash = params.get("hash");
  if (!hash) return { ok: false };
  params.delete("hash");
  const dataCheckString = [...params.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");
  const secretKey = createHmac("sha256", "WebAppData").update(botToken).digest();
  const expected = createHmac("sha256", secretKey).update(dataCheckString).digest();
  const given = Buffer.from(hash, "hex");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false };
  if (Date.now() / 1000 - Number(params.get("auth_date")) > maxAgeSec) return { ok: false };
  return { ok: true, user: JSON.parse(params.get("user") ?? "null") };
}

beforeAll(async () => {
  emu = await startTelegramEmulator({ botToken: TOKEN });
});
afterAll(() => emu.close());

describe("Mini App initData", () => {
  const user = { id: 42, first_name: "Zoë", last_name: "Ω", username: "zoe", language_code: "de" };

  it("validates with an independent implementation of Telegram's check", () => {
    const initData = emu.webAppInitData({ user, startParam: "settings" });
    const result = validate(initData, TOKEN);
    expect(result.ok).toBe(true);
    expect(result.user).toMatchObject({ id: 42, first_name: "Zoë" });
    expect(new URLSearchParams(initData).get("start_param")).toBe("settings");
    expect(initData).not.toContain("+"); // spaces and specials are percent-encoded
  });

  it("can be forged in ways a verifier must reject", () => {
    expect(validate(emu.webAppInitData({ user, botToken: "777000222:other" }), TOKEN).ok).toBe(
      false,
    );
    expect(
      validate(
        emu.webAppInitData({ user, tamper: { user: JSON.stringify({ ...user, id: 1 }) } }),
        TOKEN,
      ).ok,
    ).toBe(false);
    expect(validate(emu.webAppInitData({ user, omitHash: true }), TOKEN).ok).toBe(false);
    const stale = emu.webAppInitData({
      user,
      authDate: Math.floor(Date.now() / 1000) - 2 * 86_400,
    });
    expect(validate(stale, TOKEN, Number.POSITIVE_INFINITY).ok).toBe(true); // signature is fine
    expect(validate(stale, TOKEN, 3600).ok).toBe(false); // but too old
  });
});
