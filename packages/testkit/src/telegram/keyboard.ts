/** reply_markup validation with the Bot API's error descriptions. */
import { TgError } from "./errors.ts";

export interface InlineKeyboardButton {
  text: string;
  callback_data?: string;
  url?: string;
  web_app?: { url: string };
  [key: string]: unknown;
}

export interface InlineKeyboardMarkup {
  inline_keyboard: InlineKeyboardButton[][];
}

export interface MarkupContext {
  chatType: string;
  httpsOnly: boolean;
}

const INLINE_ACTIONS = [
  "callback_data",
  "url",
  "web_app",
  "login_url",
  "switch_inline_query",
  "switch_inline_query_current_chat",
  "switch_inline_query_chosen_chat",
  "copy_text",
  "callback_game",
  "pay",
];

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkWebAppUrl(url: unknown, ctx: MarkupContext, where: string): void {
  if (typeof url !== "string") throw TgError.badRequest(`${where} Web App URL is invalid`);
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || !/^https?:$/.test(parsed.protocol)) {
    throw TgError.badRequest(`${where} Web App URL '${url}' is invalid: Wrong HTTP URL`);
  }
  if (ctx.httpsOnly && parsed.protocol !== "https:") {
    throw TgError.badRequest(
      `${where} Web App URL '${url}' is invalid: Only HTTPS links are allowed`,
    );
  }
}

function checkInlineButton(button: unknown, ctx: MarkupContext): InlineKeyboardButton {
  if (!isObj(button))
    throw TgError.badRequest(
      "can't parse inline keyboard button: InlineKeyboardButton must be an Object",
    );
  if (typeof button.text !== "string") {
    throw TgError.badRequest(
      'can\'t parse inline keyboard button: Field "text" must be of type String',
    );
  }
  const actions = INLINE_ACTIONS.filter((k) => button[k] !== undefined);
  if (actions.length === 0) {
    throw TgError.badRequest(
      "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
    );
  }
  if (button.callback_data !== undefined) {
    const data = button.callback_data;
    if (typeof data !== "string" || Buffer.byteLength(data) < 1 || Buffer.byteLength(data) > 64) {
      throw TgError.badRequest("BUTTON_DATA_INVALID");
    }
  }
  if (button.url !== undefined) {
    const url = String(button.url);
    let ok = false;
    try {
      const parsed = new URL(url);
      ok =
        /^(https?|tg|ton):$/.test(parsed.protocol) &&
        ((parsed.protocol !== "http:" && parsed.protocol !== "https:") || !!parsed.hostname);
    } catch {
      ok = false;
    }
    if (!ok)
      throw TgError.badRequest(`inline keyboard button URL '${url}' is invalid: Wrong HTTP URL`);
  }
  if (button.web_app !== undefined) {
    if (ctx.chatType !== "private") throw TgError.badRequest("BUTTON_TYPE_INVALID");
    checkWebAppUrl(
      isObj(button.web_app) ? button.web_app.url : undefined,
      ctx,
      "inline keyboard button",
    );
  }
  return button as InlineKeyboardButton;
}

/**
 * Validates reply_markup (a JSON string in form bodies). Returns the inline
 * keyboard, which is what Telegram echoes back in Message.reply_markup; reply
 * keyboards and keyboard removals are accepted but not part of the message.
 */
export function checkReplyMarkup(
  raw: unknown,
  ctx: MarkupContext,
): InlineKeyboardMarkup | undefined {
  if (raw === undefined || raw === null || raw === "") return undefined;
  let markup = raw;
  if (typeof markup === "string") {
    try {
      markup = JSON.parse(markup);
    } catch {
      throw TgError.badRequest("can't parse reply keyboard markup JSON object");
    }
  }
  if (!isObj(markup)) throw TgError.badRequest("can't parse reply keyboard markup JSON object");
  if (markup.inline_keyboard !== undefined) {
    const rows = markup.inline_keyboard;
    if (!Array.isArray(rows) || rows.some((r) => !Array.isArray(r))) {
      throw TgError.badRequest(
        'field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of Arrays',
      );
    }
    const buttons = rows.flat().length;
    if (buttons > 100) throw TgError.badRequest("reply markup is too long");
    return {
      inline_keyboard: (rows as unknown[][]).map((row) =>
        row.map((b) => checkInlineButton(b, ctx)),
      ),
    };
  }
  if (markup.keyboard !== undefined) {
    const rows = markup.keyboard;
    if (!Array.isArray(rows) || rows.some((r) => !Array.isArray(r))) {
      throw TgError.badRequest(
        'field "keyboard" of the ReplyKeyboardMarkup should be an Array of Arrays',
      );
    }
    for (const button of (rows as unknown[][]).flat()) {
      if (isObj(button) && button.web_app !== undefined) {
        if (ctx.chatType !== "private") throw TgError.badRequest("BUTTON_TYPE_INVALID");
        checkWebAppUrl(
          isObj(button.web_app) ? button.web_app.url : undefined,
          ctx,
          "keyboard button",
        );
      } else if (
        typeof button !== "string" &&
        !(isObj(button) && typeof button.text === "string")
      ) {
        throw TgError.badRequest(
          "can't parse keyboard button: KeyboardButton must be a String or an Object",
        );
      }
    }
    return undefined;
  }
  if (markup.remove_keyboard === true || markup.force_reply === true) return undefined;
  throw TgError.badRequest("can't parse reply keyboard markup JSON object");
}

export function checkWebAppButtonUrl(url: unknown, ctx: MarkupContext): void {
  checkWebAppUrl(url, ctx, "menu button");
}

/** The inline button carrying this callback_data, if any. */
export function findCallbackButton(
  markup: InlineKeyboardMarkup | undefined,
  data: string,
): InlineKeyboardButton | undefined {
  return markup?.inline_keyboard.flat().find((b) => b.callback_data === data);
}
