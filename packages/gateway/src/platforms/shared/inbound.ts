import type { LobuError } from "@lobu/core";
import type { InboundFile } from "../../domain/messages.ts";

/**
 * The text the agent gets for a chat message. Attachments are not fetched into
 * the sandbox yet, so the agent is told they exist and that it cannot read
 * them (it can say so instead of answering as if nothing was sent).
 */
export function messageText(text: string, files: InboundFile[]): string {
  if (files.length === 0) return text;
  const names = files.map((f) => f.name).join(", ");
  const note = `[attached: ${names}. Attachments are not passed to the agent yet; it cannot read them.]`;
  return text ? `${text}\n\n${note}` : note;
}

/** What to tell a person whose message the gateway refused for good (too long, unknown agent). */
export function refusalText(err: LobuError): string {
  return `⚠️ ${err.message}${err.hint ? `. ${err.hint}` : ""}`;
}
