import type { chat_v1 } from "@googleapis/chat";
import { type CardButton, cardButtons, type RequestEvent } from "../shared/requests.ts";
import { STOP_BUTTONS, stopActionId } from "../shared/stop.ts";

/**
 * Cards v2 for request cards: one button list whose buttons call the
 * `lobu.answer` action with the request id and the choice as parameters.
 * The parameters only name the answer; the gateway decides who may give it.
 */
export const ANSWER_FUNCTION = "lobu.answer";
/** Opens a dialog with an approval's whole input (too long for a message). */
export const SHOW_INPUT_FUNCTION = "lobu.showInput";
/** The streaming reply's Stop buttons: `action` is the Stop button's id (shared/stop.ts). */
export const STOP_FUNCTION = "lobu.stop";
/** Where an approval's input waits for its dialog (adapter state). */
export const dialogInputKey = (requestId: string) => `input:${requestId}`;

export type CardV2 = chat_v1.Schema$CardWithId;

const clip = (s: string, max: number) => (s.length <= max ? s : `${s.slice(0, max - 1)}…`);

function answerButton(requestId: string, b: CardButton): chat_v1.Schema$GoogleAppsCardV1Button {
  return {
    text: clip(b.label, 80),
    ...(b.style === "primary" ? { type: "FILLED" } : {}),
    ...(b.style === "danger" ? { type: "FILLED_TONAL" } : {}),
    onClick: {
      action: {
        function: ANSWER_FUNCTION,
        parameters: [
          { key: "requestId", value: requestId },
          { key: "choice", value: b.choice },
        ],
      },
    },
  };
}

/** A button that opens a link (settings). */
export function linkButton(text: string, url: string): chat_v1.Schema$GoogleAppsCardV1Button {
  return { text, onClick: { openLink: { url } } };
}

/** The card under a request's text: its answer buttons, and a settings link button. */
export function requestCard(
  event: RequestEvent,
  linkUrl: string | undefined,
  canApprove = true,
  showInput = false,
): CardV2[] {
  const buttons = cardButtons(event, canApprove).map((b) => answerButton(event.requestId, b));
  if (showInput)
    buttons.unshift({
      text: "Show full input",
      onClick: {
        action: {
          function: SHOW_INPUT_FUNCTION,
          interaction: "OPEN_DIALOG",
          parameters: [{ key: "requestId", value: event.requestId }],
        },
      },
    });
  if (event.type === "capability_request" && linkUrl)
    buttons.push(linkButton("Open settings", linkUrl));
  return [
    {
      cardId: `lobu-${event.requestId}`.slice(0, 64),
      card: { sections: [{ widgets: [{ buttonList: { buttons } }] }] },
    },
  ];
}

/** The streaming reply's Stop buttons (shared/stop.ts), as a card under its text. */
export function stopCard(messageId: string): CardV2[] {
  const buttons = STOP_BUTTONS.map((b) => ({
    text: b.label,
    ...(b.clearQueue ? {} : { type: "FILLED_TONAL" }),
    onClick: {
      action: {
        function: STOP_FUNCTION,
        parameters: [{ key: "action", value: stopActionId(messageId, b.clearQueue) }],
      },
    },
  }));
  return [
    { cardId: "lobu-stop", card: { sections: [{ widgets: [{ buttonList: { buttons } }] }] } },
  ];
}

/** A card with one link button. */
export function linkCard(id: string, label: string, url: string): CardV2[] {
  return [
    {
      cardId: id,
      card: { sections: [{ widgets: [{ buttonList: { buttons: [linkButton(label, url)] } }] }] },
    },
  ];
}

/** textParagraph text is a small HTML subset: the input is shown as text. */
const escapeHtml = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** A dialog (actionResponse DIALOG) showing `text` verbatim under `heading`. */
export function textDialog(heading: string, text: string): chat_v1.Schema$ActionResponse {
  return {
    type: "DIALOG",
    dialogAction: {
      dialog: {
        body: {
          header: { title: heading },
          sections: [{ widgets: [{ textParagraph: { text: escapeHtml(text) } }] }],
        },
      },
    },
  };
}
