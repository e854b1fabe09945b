import { randomToken } from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import { readRecord } from "../../util/stored-record.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import { REPLY_ID_LIMIT } from "./payloads.ts";

/**
 * The id a card's button or list row carries, which WhatsApp sends back in
 * button_reply / list_reply: `r:<requestId>:<choice>` when it fits in 200
 * characters, else `t:<token>` with the pair kept in the adapter's state.
 * The id only names the answer; who may give it is checked by the gateway.
 */

const TOKEN_TTL_MS = 2 * 86_400_000;
const tokenKey = (token: string) => `reply:${token}`;

const StoredReply = z.object({ requestId: z.string().min(1), choice: z.string() });
export type ReplyAnswer = z.infer<typeof StoredReply>;

export async function replyId(
  requestId: string,
  choice: string,
  state: AdapterContext["state"],
): Promise<string> {
  const direct = `r:${requestId}:${choice}`;
  if (direct.length <= REPLY_ID_LIMIT) return direct;
  const token = randomToken(12);
  await state.set(tokenKey(token), JSON.stringify({ requestId, choice }), TOKEN_TTL_MS);
  return `t:${token}`;
}

/** The answer a reply id stands for; undefined when unknown, expired or unreadable. */
export async function parseReplyId(
  id: string,
  state: AdapterContext["state"],
  log: Logger,
): Promise<ReplyAnswer | undefined> {
  if (id.startsWith("r:")) {
    const rest = id.slice(2);
    const colon = rest.indexOf(":");
    if (colon <= 0 || colon === rest.length - 1) return undefined;
    return { requestId: rest.slice(0, colon), choice: rest.slice(colon + 1) };
  }
  if (id.startsWith("t:")) {
    const key = tokenKey(id.slice(2));
    const raw = await state.get(key);
    if (raw === null) return undefined;
    const source = { record: "WhatsApp button answer", key };
    return readRecord(StoredReply, raw, source, log, "the button reads as inactive");
  }
  return undefined;
}
