import { randomToken } from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import { readRecord } from "../../util/stored-record.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import { type CardButton, cardButtons, type RequestEvent } from "../shared/requests.ts";
import { STOP_BUTTONS, stopActionId } from "../shared/stop.ts";

/**
 * A card's answer components: up to five buttons in one row, or a select
 * menu when there are more choices (Discord: 5 buttons per row, labels of
 * 80 characters, select menus of 25 options). Each carries
 * `lobu:<requestId>:<choice>` as its custom id (100 characters at most,
 * else a token kept in the adapter's state); the id only names the answer,
 * the gateway decides who may give it.
 */

const CUSTOM_ID_LIMIT = 100;
const TOKEN_TTL_MS = 2 * 86_400_000;
const tokenKey = (token: string) => `cid:${token}`;
const StoredAnswer = z.object({ requestId: z.string().min(1), choice: z.string() });
export type ComponentAnswer = z.infer<typeof StoredAnswer>;

const Style = { Primary: 1, Secondary: 2, Danger: 4, Link: 5 } as const;

export type Component =
  | { type: 2; style: number; label: string; custom_id: string }
  | { type: 2; style: 5; label: string; url: string }
  | {
      type: 3;
      custom_id: string;
      placeholder: string;
      options: { label: string; value: string; description?: string }[];
    };
export type ActionRow = { type: 1; components: Component[] };

export async function customId(
  requestId: string,
  choice: string,
  state: AdapterContext["state"],
): Promise<string> {
  const direct = `lobu:${requestId}:${choice}`;
  if (direct.length <= CUSTOM_ID_LIMIT) return direct;
  const token = randomToken(12);
  await state.set(tokenKey(token), JSON.stringify({ requestId, choice }), TOKEN_TTL_MS);
  return `lobu:t:${token}`;
}

/** What a clicked component stands for; undefined when unknown or expired. `value` is a select's pick. */
export async function parseCustomId(
  id: string,
  value: string | undefined,
  state: AdapterContext["state"],
  log: Logger,
): Promise<ComponentAnswer | undefined> {
  // A select menu's custom id names the request; the option's value is the choice.
  if (id.startsWith("lobu:s:")) {
    const requestId = id.slice("lobu:s:".length);
    return requestId && value ? { requestId, choice: value } : undefined;
  }
  if (id.startsWith("lobu:t:")) {
    const key = tokenKey(id.slice("lobu:t:".length));
    const raw = await state.get(key);
    if (raw === null) return undefined;
    return readRecord(
      StoredAnswer,
      raw,
      { record: "Discord button answer", key },
      log,
      "the button reads as inactive",
    );
  }
  if (!id.startsWith("lobu:")) return undefined;
  const rest = id.slice("lobu:".length);
  const colon = rest.indexOf(":");
  if (colon <= 0 || colon === rest.length - 1) return undefined;
  return { requestId: rest.slice(0, colon), choice: rest.slice(colon + 1) };
}

const clip = (s: string, max: number) => (s.length <= max ? s : `${s.slice(0, max - 1)}…`);

function style(b: CardButton): number {
  return b.style === "primary"
    ? Style.Primary
    : b.style === "danger"
      ? Style.Danger
      : Style.Secondary;
}

/** The card's components: answer buttons (or a select), and a settings link button. */
export async function cardComponents(
  event: RequestEvent,
  linkUrl: string | undefined,
  state: AdapterContext["state"],
  canApprove = true,
): Promise<ActionRow[]> {
  const buttons = cardButtons(event, canApprove);
  const rows: ActionRow[] = [];
  if (buttons.length <= 5) {
    const components: Component[] = [];
    for (const b of buttons)
      components.push({
        type: 2,
        style: style(b),
        label: clip(b.label, 80),
        custom_id: await customId(event.requestId, b.choice, state),
      });
    rows.push({ type: 1, components });
  } else {
    const requestId = `lobu:s:${event.requestId}`;
    if (requestId.length > CUSTOM_ID_LIMIT)
      throw new Error("request id too long for a select menu");
    rows.push({
      type: 1,
      components: [
        {
          type: 3,
          custom_id: requestId,
          placeholder: "Choose an answer",
          options: buttons.slice(0, 25).map((b) => ({
            label: clip(b.label, 100),
            value: b.choice.slice(0, 100),
            ...(b.label.length > 100 ? { description: clip(b.label.slice(99), 100) } : {}),
          })),
        },
      ],
    });
  }
  if (event.type === "capability_request" && linkUrl)
    rows.push({
      type: 1,
      components: [{ type: 2, style: Style.Link, label: "Open settings", url: linkUrl }],
    });
  return rows;
}

/** One link button (settings links). */
export function linkRow(label: string, url: string): ActionRow {
  return { type: 1, components: [{ type: 2, style: Style.Link, label, url }] };
}

/** The streaming reply's Stop buttons (shared/stop.ts), for the turn of `messageId`. */
export function stopRow(messageId: string): ActionRow {
  return {
    type: 1,
    components: STOP_BUTTONS.map((b) => ({
      type: 2 as const,
      style: b.clearQueue ? Style.Secondary : Style.Danger,
      label: b.label,
      custom_id: stopActionId(messageId, b.clearQueue),
    })),
  };
}
