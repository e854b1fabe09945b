import { clip } from "../shared/markdown.ts";

/**
 * The messages the adapter sends, in the Cloud API's shapes (the fields after
 * messaging_product and recipient_type), with WhatsApp's limits in one place.
 */

/** A text message: at most 4096 characters. */
export const TEXT_LIMIT = 4096;
/** An interactive message's body: at most 1024 characters. */
export const BODY_LIMIT = 1024;
/** Reply buttons: at most three, titles at most 20 characters; ids (buttons 256, list rows 200) at most 200. */
export const MAX_REPLY_BUTTONS = 3;
export const BUTTON_TITLE_LIMIT = 20;
export const REPLY_ID_LIMIT = 200;
/** List messages: at most 10 rows; a row's title 24 characters, its description 72. */
export const MAX_LIST_ROWS = 10;
const ROW_TITLE_LIMIT = 24;
const ROW_DESCRIPTION_LIMIT = 72;
const LIST_BUTTON_LIMIT = 20;
const CTA_TEXT_LIMIT = 20;

type Context = { context?: { message_id: string } };

export type OutboundMessage = { to: string } & Context &
  (
    | { type: "text"; text: { body: string; preview_url: boolean } }
    | { type: "interactive"; interactive: Interactive }
    | {
        type: "template";
        template: { name: string; language: { code: string } };
      }
    | { type: "document"; document: { id: string; filename: string; caption?: string } }
    | { type: "image"; image: { id: string; caption?: string } }
  );

type Interactive =
  | {
      type: "button";
      body: { text: string };
      action: { buttons: { type: "reply"; reply: { id: string; title: string } }[] };
    }
  | {
      type: "list";
      body: { text: string };
      action: {
        button: string;
        sections: { title?: string; rows: { id: string; title: string; description?: string }[] }[];
      };
    }
  | {
      type: "cta_url";
      body: { text: string };
      action: { name: "cta_url"; parameters: { display_text: string; url: string } };
    };

const inReplyTo = (replyTo: string | undefined): Context =>
  replyTo ? { context: { message_id: replyTo } } : {};

export function textMessage(to: string, body: string, replyTo?: string): OutboundMessage {
  return {
    to,
    type: "text",
    text: { body: clip(body, TEXT_LIMIT), preview_url: false },
    ...inReplyTo(replyTo),
  };
}

/** A choice on a card: its reply id and the label shown. */
export interface Choice {
  id: string;
  label: string;
}

/**
 * Answer choices as reply buttons when WhatsApp can show them (at most three,
 * every label within 20 characters), else as a list message (at most ten
 * rows; a longer label is cut in the title and continues in the description).
 */
export function choicesMessage(to: string, body: string, choices: Choice[]): OutboundMessage {
  const text = clip(body || "…", BODY_LIMIT);
  const fits =
    choices.length <= MAX_REPLY_BUTTONS &&
    choices.every((c) => c.label.length <= BUTTON_TITLE_LIMIT);
  if (fits) {
    return {
      to,
      type: "interactive",
      interactive: {
        type: "button",
        body: { text },
        action: {
          buttons: choices.map((c) => ({ type: "reply", reply: { id: c.id, title: c.label } })),
        },
      },
    };
  }
  const rows = choices.slice(0, MAX_LIST_ROWS).map((c) => {
    const title = clip(c.label, ROW_TITLE_LIMIT);
    return {
      id: c.id,
      title,
      ...(title !== c.label ? { description: clip(c.label, ROW_DESCRIPTION_LIMIT) } : {}),
    };
  });
  return {
    to,
    type: "interactive",
    interactive: {
      type: "list",
      body: { text },
      action: { button: clip("Choose an answer", LIST_BUTTON_LIMIT), sections: [{ rows }] },
    },
  };
}

/** A message with one button that opens `url` (settings links). */
export function linkMessage(to: string, body: string, label: string, url: string): OutboundMessage {
  return {
    to,
    type: "interactive",
    interactive: {
      type: "cta_url",
      body: { text: clip(body, BODY_LIMIT) },
      action: {
        name: "cta_url",
        parameters: { display_text: clip(label, CTA_TEXT_LIMIT), url },
      },
    },
  };
}

export function templateMessage(
  to: string,
  template: { name: string; language: string },
): OutboundMessage {
  return {
    to,
    type: "template",
    template: { name: template.name, language: { code: template.language } },
  };
}

/** A file uploaded to the media endpoint, sent as a document. */
export function documentMessage(
  to: string,
  mediaId: string,
  filename: string,
  caption: string,
): OutboundMessage {
  return {
    to,
    type: "document",
    document: { id: mediaId, filename, caption: clip(caption, BODY_LIMIT) },
  };
}

/** An uploaded picture (JPEG or PNG), shown in the chat as one. */
export function imageMessage(to: string, mediaId: string, caption: string): OutboundMessage {
  const image = { id: mediaId, ...(caption ? { caption: clip(caption, BODY_LIMIT) } : {}) };
  return { to, type: "image", image };
}
