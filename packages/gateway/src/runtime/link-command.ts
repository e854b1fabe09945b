import { isLobuError } from "@lobu/core";
import { userKeyOf } from "../domain/origin.ts";
import type { QueuedTurn } from "../domain/turns.ts";
import type { Accounts } from "../people/accounts.ts";

/**
 * `link` and `link <code>` sent to the agent: the gateway answers them itself,
 * on every platform (the REST API included), without waking the sandbox.
 * `link` shows a new offer code for the sender's identity; `link <code>`
 * enters a code: an offer hands the sender a finishing code for the offer's
 * creator (nothing is linked yet), and a finishing code entered by that
 * creator links the account (the two-code handshake of people/accounts.ts).
 * Codes are shown only in direct conversations: in a channel others would
 * read them.
 */
const COMMAND = /^\s*\/?link(?:@\w+)?(?:\s+([0-9A-Za-z][0-9A-Za-z -]{0,23}))?\s*$/i;

export interface LinkCommandDeps {
  accounts: Pick<Accounts, "createCode" | "confirm">;
}

/** The gateway's reply when the turn's text is a link command, else undefined (a turn for the agent). */
export async function linkCommandReply(
  deps: LinkCommandDeps,
  turn: Pick<QueuedTurn, "text" | "origin">,
): Promise<string | undefined> {
  const m = COMMAND.exec(turn.text);
  if (!m) return undefined;
  if (!turn.origin.isDirect)
    return "Link codes are private: send `link` to me in a direct message.";
  const me = userKeyOf(turn.origin);
  try {
    if (!m[1]) {
      const { code } = await deps.accounts.createCode(me);
      return [
        `Your link code is ${code} (valid for 10 minutes, once).`,
        `To link another account of yours to this one, send \`link ${code}\` from that account, or enter the code on its settings page. It answers with a second code to enter back here.`,
        "Never send this code to anyone else.",
      ].join("\n");
    }
    const done = await deps.accounts.confirm(me, m[1]);
    if (done.step === "pending")
      return [
        `Almost there: nothing is linked yet. Your finishing code is ${done.code} (valid for 10 minutes, once).`,
        `Send \`link ${done.code}\` from the account where you got the first code, or enter it on that account's settings page.`,
        "If someone else gave you the first code, stop here: do not pass this code on.",
      ].join("\n");
    const others = done.linked.identities.length - 1;
    return [
      `Linked: ${done.joined} now shares settings, keys, skills and memory with this account (${others} other account${others > 1 ? "s" : ""} linked in all).`,
      "If that was not you, unlink it at once on the settings page.",
    ].join("\n");
  } catch (err) {
    if (!isLobuError(err)) throw err;
    return err.hint ? `${err.message}. ${err.hint}` : err.message;
  }
}
