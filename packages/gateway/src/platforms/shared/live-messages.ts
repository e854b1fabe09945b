import type { Logger } from "pino";
import { RetryLater } from "./pacing.ts";

/**
 * A streamed reply's messages (a long reply spans several) and what each
 * shows: its content, and whether it carries the Stop controls (compared
 * before an edit, so an unchanged message is not edited again).
 */
export interface LiveMessages<Id> {
  ids: Id[];
  shown: string[];
}

/** How a platform sends, edits and deletes one message of a reply; `stop` is its Stop controls. */
export interface MessageIo<Id, Stop> {
  send(content: string, stop: Stop | undefined): Promise<Id>;
  edit(id: Id, content: string, stop: Stop | undefined): Promise<void>;
  /** Deletes, logging a failure (a message left over in the chat is not worth failing the turn). */
  remove(id: Id): Promise<void>;
}

const shownAs = (content: string, stop: boolean) => (stop ? `${content}\u0000stop` : content);

/**
 * Bring the reply's messages to `chunks`: new ones sent, changed ones
 * edited, surplus ones (a redrawn attempt can be shorter) deleted. The last
 * message carries `stop` while the reply streams.
 */
export async function renderMessages<Id, Stop>(
  handle: LiveMessages<Id> | undefined,
  chunks: string[],
  stop: Stop | undefined,
  io: MessageIo<Id, Stop>,
): Promise<LiveMessages<Id>> {
  const live: LiveMessages<Id> = handle
    ? { ids: [...handle.ids], shown: [...handle.shown] }
    : { ids: [], shown: [] };
  for (const [i, content] of chunks.entries()) {
    const id = live.ids[i];
    const controls = i === chunks.length - 1 ? stop : undefined;
    const shown = shownAs(content, controls !== undefined);
    if (id === undefined) {
      live.ids.push(await io.send(content, controls));
      live.shown.push(shown);
    } else if (live.shown[i] !== shown) {
      await io.edit(id, content, controls);
      live.shown[i] = shown;
    }
  }
  for (const id of live.ids.splice(chunks.length)) await io.remove(id);
  live.shown.length = live.ids.length;
  return live;
}

/**
 * Send an approval's full input before its card, once per file name (a
 * retried card sends nothing twice). `send` says how it went; "none" (or a
 * failure other than a rate limit, logged) means it could not be sent, and
 * the card then offers Deny only.
 */
export async function sendInputOnce<How extends string>(
  sent: Map<string, How>,
  fileName: string,
  log: Logger,
  send: () => Promise<How | "none">,
): Promise<How | "none"> {
  const already = sent.get(fileName);
  if (already) return already;
  let how: How | "none";
  try {
    how = await send();
  } catch (err) {
    if (err instanceof RetryLater) throw err;
    log.warn({ err }, "could not send an approval's full input: only Deny is offered");
    return "none";
  }
  if (how !== "none") sent.set(fileName, how);
  return how;
}
