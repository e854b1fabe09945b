import { errorBody } from "@lobu/core";
import type { Context } from "hono";
import { userKeyOf } from "../../domain/origin.ts";
import type { PlatformRoutes } from "../shared/routes.ts";
import type { TelegramSettings } from "./config.ts";
import { verifyInitData } from "./init-data.ts";

/** initData is a few KB at most (the settings login caps it at 8 KiB). */
const VERIFY_MAX_BODY_BYTES = 16 * 1024;

/**
 * POST /telegram/webapp/verify (a named bot's: /telegram/<id>/webapp/verify):
 * who opened that bot's Mini App, checked statelessly against its token.
 * initData another bot signed is refused.
 * It opens no session and hands out nothing, so the same initData may be
 * checked again. The settings page signs in through
 * /settings/api/session/telegram instead (single-use, sign-in.ts).
 */
export function webAppRoutes(
  routes: PlatformRoutes,
  settings: Pick<TelegramSettings, "initDataMaxAgeSec"> & {
    path: string;
    botId: string;
    token: string;
  },
): void {
  routes.post(
    settings.path,
    async (c) => {
      const initData = await initDataOf(c);
      if (!initData) {
        return c.json(
          errorBody(
            "invalid_init_data",
            'no initData: send {"initData": "<Telegram.WebApp.initData>"} or the header Authorization: tma <initData>',
          ),
          401,
        );
      }
      const result = verifyInitData(initData, settings.token, {
        maxAgeSec: settings.initDataMaxAgeSec,
      });
      if (!result.ok) return c.json(errorBody("invalid_init_data", result.reason), 401);
      const userKey = userKeyOf({
        platform: "telegram",
        ...(settings.botId ? { workspace: settings.botId } : {}),
        userId: String(result.user.id),
      });
      const { ok: _ok, ...verified } = result;
      return c.json({ ok: true, userKey, ...verified });
    },
    { maxBodyBytes: VERIFY_MAX_BODY_BYTES },
  );
}

/** initData from `Authorization: tma …`, a JSON or form body, or the raw body. */
async function initDataOf(c: Context): Promise<string | undefined> {
  const fromHeader = /^tma\s+(.+)$/i.exec(c.req.header("authorization") ?? "")?.[1];
  if (fromHeader) return fromHeader;
  const type = c.req.header("content-type") ?? "";
  try {
    if (type.includes("application/json")) {
      const body = (await c.req.json()) as { initData?: unknown } | null;
      return typeof body?.initData === "string" ? body.initData : undefined;
    }
    if (type.includes("form")) return String((await c.req.parseBody()).initData ?? "");
    return await c.req.text();
  } catch {
    return undefined;
  }
}
