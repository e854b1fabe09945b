import { isLobuError } from "@lobu/core";
import { userKeyOf } from "../domain/origin.ts";
import type { QueuedTurn } from "../domain/turns.ts";
import type { Accounts } from "../people/accounts.ts";

/**
 * `link` and `link <code>` sent to the agent: the gateway answers them itself,
 * on every platform (the REST API included), without waking the sandbox.
 * `link` shows a new code for the sender's identity; `link <code>` links the
 * sender into the account of the code's creator (people/accounts.ts). Codes
 * are shown only in direct conversations: in a channel others would read them.
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
        `To link another account of yours to this one, send \`link ${code}\` from that account, or enter the code on its settings page.`,
        "Never send this code to anyone else: whoever enters it joins their account to yours.",
      ].join("\n");
    }
    const linked = await deps.accounts.confirm(me, m[1]);
    return [
      `Linked: this account now shares settings, keys, skills and memory with ${linked.identities.length - 1} other account${linked.identities.length > 2 ? "s" : ""} of yours.`,
      "Unlink it at any time on the settings page.",
    ].join("\n");
  } catch (err) {
    if (!isLobuError(err)) throw err;
    return err.hint ? `${err.message}. ${err.hint}` : err.message;
  }
}
