import { isLobuError } from "@lobu/core";
import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext } from "./adapter.ts";
import { refusalText } from "./inbound.ts";

/** `bind <agent>` or `unbind`, as a message to the bot (Slack) or a command's arguments (Telegram). */
export type BindCommand = { agent: string | null };

export function parseBindCommand(text: string): BindCommand | undefined {
  const t = text.trim();
  if (/^unbind$/i.test(t)) return { agent: null };
  const m = /^bind\s+([a-z0-9][a-z0-9_-]{0,62})$/i.exec(t);
  return m?.[1] ? { agent: m[1].toLowerCase() } : undefined;
}

/**
 * Carry out a bind command and say what happened: only in a channel, only for
 * someone the platform says administers it (`isAdmin`, asked only then), and
 * only as the gateway allows (ctx.bindChannel refuses what it must).
 */
export async function runBindCommand(
  ctx: Pick<AdapterContext, "bindChannel">,
  origin: Origin,
  command: BindCommand,
  isAdmin: () => Promise<boolean>,
): Promise<string> {
  if (origin.isDirect) return "Bind a channel, not a direct message: send this in the channel.";
  if (!(await isAdmin()))
    return "Only the channel's admins can bind it to an agent (Slack: workspace admins and owners; Telegram: the group's administrators).";
  try {
    await ctx.bindChannel(origin, command.agent);
  } catch (err) {
    if (isLobuError(err) && err.status < 500) return refusalText(err);
    throw err;
  }
  return command.agent
    ? `This channel now talks to the agent "${command.agent}".`
    : "This channel is unbound: the platform's default agent answers here again.";
}
