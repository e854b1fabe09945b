/** What a sent message shows, as the emulator records it. */
import type { SendMessage } from "./graph-api.ts";
import type { WhatsAppSent } from "./types.ts";

/** The first reply id used twice in one interactive message (the Cloud API refuses that). */
export function duplicateIds(m: SendMessage): string | undefined {
  if (m.type !== "interactive") return undefined;
  const i = m.interactive;
  const ids =
    i.type === "button"
      ? i.action.buttons.map((b) => b.reply.id)
      : i.type === "list"
        ? i.action.sections.flatMap((s) => s.rows.map((r) => r.id))
        : [];
  return ids.find((id, n) => ids.indexOf(id) !== n);
}

/** The record of a message the bot sent. */
export function sentOf(
  id: string,
  to: string,
  m: SendMessage,
  templateText?: string,
): WhatsAppSent {
  const base = {
    id,
    to,
    type: m.type,
    buttons: [],
    rows: [],
    at: Date.now(),
    payload: m,
    ...(m.context ? { replyTo: m.context.message_id } : {}),
  };
  switch (m.type) {
    case "text":
      return { ...base, text: m.text.body };
    case "template":
      return {
        ...base,
        text: templateText ?? "",
        template: { name: m.template.name, language: m.template.language.code },
      };
    case "document":
      return {
        ...base,
        text: m.document.caption ?? "",
        document: {
          mediaId: m.document.id,
          ...(m.document.filename ? { filename: m.document.filename } : {}),
          ...(m.document.caption ? { caption: m.document.caption } : {}),
        },
      };
    case "image":
      return {
        ...base,
        text: m.image.caption ?? "",
        image: {
          mediaId: m.image.id,
          ...(m.image.caption ? { caption: m.image.caption } : {}),
        },
      };
    case "interactive": {
      const i = m.interactive;
      const text = [i.header?.text, i.body.text, i.footer?.text].filter(Boolean).join("\n\n");
      if (i.type === "button")
        return { ...base, text, buttons: i.action.buttons.map((b) => ({ ...b.reply })) };
      if (i.type === "list")
        return {
          ...base,
          text,
          listButton: i.action.button,
          rows: i.action.sections.flatMap((s) => s.rows.map((r) => ({ ...r }))),
        };
      return {
        ...base,
        text,
        link: { text: i.action.parameters.display_text, url: i.action.parameters.url },
      };
    }
  }
}
