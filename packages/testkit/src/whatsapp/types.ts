/** A message the bot sent, as the person sees it in their chat. */
export interface WhatsAppSent {
  /** The wamid the Cloud API answered with. */
  id: string;
  to: string;
  type: "text" | "interactive" | "template" | "document" | "image";
  /** What the message shows: a text's body, an interactive message's header/body/footer, a template's text. */
  text: string;
  /** Reply buttons (type "button"). */
  buttons: { id: string; title: string }[];
  /** A list message's rows. */
  rows: { id: string; title: string; description?: string }[];
  /** A list message's button text. */
  listButton?: string;
  /** A CTA URL button. */
  link?: { text: string; url: string };
  template?: { name: string; language: string };
  document?: { mediaId: string; filename?: string; caption?: string };
  /** An image message (uploaded media shown as a picture). */
  image?: { mediaId: string; caption?: string };
  /** The message it replies to (quoted). */
  replyTo?: string;
  at: number;
  /** The request body as the bot sent it. */
  payload: unknown;
}

/** A call the bot made to the Graph API. */
export interface WhatsAppCall {
  method: string;
  path: string;
  status: number;
  /** The Graph error code of a refusal. */
  errorCode?: number;
  /** The message type (text, interactive, template, read) of a /messages call. */
  kind?: string;
  body: unknown;
}

/** A read receipt (with the typing indicator, when asked for). */
export interface WhatsAppReceipt {
  messageId: string;
  typing: boolean;
  at: number;
}

/** One POST of a webhook notification to the app, and how it answered. */
export interface WhatsAppDelivery {
  /** The inbound message's wamid this delivery carries. */
  messageId: string;
  attempt: number;
  /** The app's answer. */
  status: number;
  body: string;
  /** The notification as posted (the exact signed bytes) and its X-Hub-Signature-256. */
  notification: string;
  signature: string;
  error?: string;
}

export interface WhatsAppPerson {
  /** wa_id: the phone number, digits only. */
  waId: string;
  name?: string;
}

export interface WhatsAppEmulatorOptions {
  accessToken: string;
  appSecret: string;
  phoneNumberId: string;
  displayPhoneNumber?: string;
  /** WhatsApp Business Account id (entry.id of notifications). */
  businessAccountId?: string;
  /** Approved message templates (others are refused with 132001). */
  templates?: { name: string; language: string; text: string }[];
  /** Where notifications go (also settable later with setWebhook). */
  webhookUrl?: string;
  /** Delays between redeliveries after a non-200 answer (Meta retries for days; tests use short ones). */
  retryDelaysMs?: number[];
  port?: number;
}
