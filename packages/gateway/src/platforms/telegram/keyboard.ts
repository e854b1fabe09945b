import { randomToken } from "@lobu/core";
import type { InlineKeyboardButton, InlineKeyboardMarkup } from "grammy/types";
import type { Logger } from "pino";
import { z } from "zod";
import { readRecord } from "../../util/stored-record.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import { cardButtons, linkLabel, type RequestEvent } from "../shared/requests.ts";
import { STOP_BUTTONS, stopActionId } from "../shared/stop.ts";

/** Telegram limits callback_data to 64 bytes. */
const MAX_CALLBACK_BYTES = 64;
const TOKEN_TTL_MS = 2 * 86_400_000;
const tokenKey = (token: string) => `cb:${token}`;

/** An answer too long for callback_data, kept in the adapter's state as `cb:<token>`. */
const StoredCallback = z.object({ requestId: z.string().min(1), choice: z.string() });
type StoredCallback = z.infer<typeof StoredCallback>;

/**
 * callback_data for an answer: `l:<requestId>:<choice>` when it fits in 64
 * bytes, else `t:<token>` with the pair stored in the adapter's state.
 */
export async function callbackData(
  requestId: string,
  choice: string,
  state: AdapterContext["state"],
): Promise<string> {
  const direct = `l:${requestId}:${choice}`;
  if (Buffer.byteLength(direct) <= MAX_CALLBACK_BYTES) return direct;
  const token = randomToken(12);
  const stored: StoredCallback = { requestId, choice };
  await state.set(tokenKey(token), JSON.stringify(stored), TOKEN_TTL_MS);
  return `t:${token}`;
}

/** The answer a button stands for; undefined when unknown, expired or unreadable (logged). */
export async function parseCallbackData(
  data: string,
  state: AdapterContext["state"],
  log: Logger,
): Promise<StoredCallback | undefined> {
  if (data.startsWith("l:")) {
    const rest = data.slice(2);
    const colon = rest.indexOf(":");
    if (colon <= 0 || colon === rest.length - 1) return undefined;
    return { requestId: rest.slice(0, colon), choice: rest.slice(colon + 1) };
  }
  if (data.startsWith("t:")) {
    const key = tokenKey(data.slice(2));
    const raw = await state.get(key);
    if (raw === null) return undefined;
    const source = { record: "Telegram button answer", key };
    return readRecord(StoredCallback, raw, source, log, "the button reads as inactive");
  }
  return undefined;
}

/**
 * Answer buttons in rows: short labels two to a row, long ones alone. An
 * approval whose full input the person cannot read here gets Deny only.
 */
export async function cardKeyboard(
  event: RequestEvent,
  linkUrl: string | undefined,
  state: AdapterContext["state"],
  canApprove = true,
): Promise<InlineKeyboardMarkup> {
  const rows: InlineKeyboardButton[][] = [];
  if (event.type === "capability_request" && linkUrl)
    rows.push([{ text: linkLabel(event), url: linkUrl }]);
  let row: InlineKeyboardButton[] = [];
  for (const b of cardButtons(event, canApprove)) {
    const button = {
      text: b.label,
      callback_data: await callbackData(event.requestId, b.choice, state),
    };
    const long = b.label.length > 20;
    if (long || row.length === 2) {
      if (row.length) rows.push(row);
      row = [];
    }
    row.push(button);
    if (long) {
      rows.push(row);
      row = [];
    }
  }
  if (row.length) rows.push(row);
  return { inline_keyboard: rows };
}

/**
 * The settings button: a Mini App (web_app) in private chats; in groups, where
 * Telegram allows no web_app buttons and the link must stay personal, a link
 * that opens the private chat with /start settings.
 */
export function settingsKeyboard(opts: {
  isPrivate: boolean;
  url?: string;
  botUsername: string;
}): InlineKeyboardMarkup {
  if (opts.isPrivate && opts.url)
    return { inline_keyboard: [[{ text: "Open settings", web_app: { url: opts.url } }]] };
  return {
    inline_keyboard: [
      [{ text: "Open settings", url: `https://t.me/${opts.botUsername}?start=settings` }],
    ],
  };
}

/** The streaming reply's Stop buttons (shared/stop.ts), for the turn of `messageId`. */
export function stopKeyboard(messageId: string): InlineKeyboardMarkup {
  return {
    inline_keyboard: [
      STOP_BUTTONS.map((b) => ({
        text: b.label,
        callback_data: stopActionId(messageId, b.clearQueue),
      })),
    ],
  };
}
