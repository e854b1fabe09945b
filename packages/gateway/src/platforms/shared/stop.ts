import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext } from "./adapter.ts";

/**
 * Stopping a turn from a chat, the same way on every platform: the Stop
 * buttons on the streaming reply, a `stop` message, a stop reaction. Each
 * goes through `ctx.stop`, which checks that the person may stop it and
 * never waits behind the conversation's queue.
 */

/** What a stop asks for: the turn alone, or the messages queued behind it too. */
export interface StopChoice {
  clearQueue: boolean;
}

/**
 * A chat message that is a stop: exactly `stop` (the running turn) or
 * `stop all` (and the queue), any case, with or without a leading slash
 * (Telegram's `/stop`, also `/stop@botname`). Anything else is a message
 * for the agent, so "stop the server" still reaches it.
 */
export function stopCommand(text: string): StopChoice | undefined {
  const words = text
    .trim()
    .toLowerCase()
    .replace(/^\/(stop)(@\w+)?/, "$1")
    .split(/\s+/);
  if (words[0] !== "stop") return undefined;
  if (words.length === 1) return { clearQueue: false };
  if (words.length === 2 && words[1] === "all") return { clearQueue: true };
  return undefined;
}

/** The buttons on a streaming reply, in order. */
export const STOP_BUTTONS = [
  { label: "⏹ Stop", clearQueue: false },
  { label: "Stop and clear queue", clearQueue: true },
] as const;

const PREFIX = "lobu-stop:";
const PREFIX_ALL = "lobu-stop-all:";

/** A Stop button's id (Slack action_id, Telegram callback_data: under 64 bytes). */
export function stopActionId(messageId: string, clearQueue: boolean): string {
  return `${clearQueue ? PREFIX_ALL : PREFIX}${messageId}`;
}

/** The message a Stop button stops, and how, if `id` is one. */
export function parseStopAction(id: string): ({ messageId: string } & StopChoice) | undefined {
  const [prefix, clearQueue] = id.startsWith(PREFIX_ALL)
    ? [PREFIX_ALL, true]
    : id.startsWith(PREFIX)
      ? [PREFIX, false]
      : [undefined, false];
  if (!prefix) return undefined;
  const messageId = id.slice(prefix.length);
  return /^[A-Za-z0-9_-]{1,60}$/.test(messageId) ? { messageId, clearQueue } : undefined;
}

/** Reactions that stop the reactor's running turn in that conversation (Slack names). */
export const STOP_REACTIONS: ReadonlySet<string> = new Set([
  "octagonal_sign",
  "stop_sign",
  "black_square_for_stop",
]);

export type Who = Pick<Origin, "platform" | "workspace" | "userId" | "userName">;

/**
 * A stop from a chat. `tell` gets what to say to the person: why it was
 * refused, or what was dropped from the queue. A plain stop that worked says
 * nothing here: the stopped reply itself ends with who stopped it.
 */
export async function stopFromChat(
  ctx: Pick<AdapterContext, "stop">,
  request: Parameters<AdapterContext["stop"]>[0],
  tell: (text: string, ok: boolean) => Promise<void>,
): Promise<void> {
  const result = await ctx.stop(request);
  const text = result.ok ? result.text : `⚠️ ${capitalize(result.text)}.`;
  if (text) await tell(text, result.ok);
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
