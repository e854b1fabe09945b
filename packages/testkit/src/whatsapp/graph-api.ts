import { z } from "zod";

/**
 * What the Cloud API accepts at POST /<version>/<phone-number-id>/messages,
 * with its limits (a wrong shape is refused as Graph refuses it, code 100 or
 * 131009), and the error envelope it answers with.
 */

const Context = z.object({ message_id: z.string().min(1) }).optional();
const Recipient = {
  messaging_product: z.literal("whatsapp"),
  recipient_type: z.literal("individual").optional(),
  to: z.string().regex(/^\+?\d{1,20}$/),
  context: Context,
};

const ReplyButton = z.object({
  type: z.literal("reply"),
  reply: z.object({ id: z.string().min(1).max(256), title: z.string().min(1).max(20) }),
});
const Body = z.object({ text: z.string().min(1).max(1024) });
const Footer = z.object({ text: z.string().min(1).max(60) }).optional();
const Header = z.object({ type: z.literal("text"), text: z.string().min(1).max(60) }).optional();

const ButtonInteractive = z.object({
  type: z.literal("button"),
  header: Header,
  body: Body,
  footer: Footer,
  action: z.object({ buttons: z.array(ReplyButton).min(1).max(3) }),
});
const Row = z.object({
  id: z.string().min(1).max(200),
  title: z.string().min(1).max(24),
  description: z.string().max(72).optional(),
});
const ListInteractive = z.object({
  type: z.literal("list"),
  header: Header,
  body: Body,
  footer: Footer,
  action: z.object({
    button: z.string().min(1).max(20),
    sections: z
      .array(z.object({ title: z.string().max(24).optional(), rows: z.array(Row).min(1).max(10) }))
      .min(1)
      .max(10),
  }),
});
const CtaInteractive = z.object({
  type: z.literal("cta_url"),
  header: Header,
  body: Body,
  footer: Footer,
  action: z.object({
    name: z.literal("cta_url"),
    parameters: z.object({ display_text: z.string().min(1).max(20), url: z.url() }),
  }),
});

export const SendMessage = z.discriminatedUnion("type", [
  z.object({
    ...Recipient,
    type: z.literal("text"),
    text: z.object({ body: z.string().min(1).max(4096), preview_url: z.boolean().optional() }),
  }),
  z.object({
    ...Recipient,
    type: z.literal("interactive"),
    interactive: z.discriminatedUnion("type", [ButtonInteractive, ListInteractive, CtaInteractive]),
  }),
  z.object({
    ...Recipient,
    type: z.literal("template"),
    template: z.object({
      name: z.string().min(1).max(512),
      language: z.object({ code: z.string().min(2) }),
    }),
  }),
  z.object({
    ...Recipient,
    type: z.literal("document"),
    document: z.object({
      id: z.string().min(1),
      filename: z.string().max(240).optional(),
      caption: z.string().max(1024).optional(),
    }),
  }),
  z.object({
    ...Recipient,
    type: z.literal("image"),
    image: z.object({ id: z.string().min(1), caption: z.string().max(1024).optional() }),
  }),
]);
export type SendMessage = z.infer<typeof SendMessage>;

export const ReadReceipt = z.object({
  messaging_product: z.literal("whatsapp"),
  status: z.literal("read"),
  message_id: z.string().min(1),
  typing_indicator: z.object({ type: z.literal("text") }).optional(),
});

/** A Graph error as the Cloud API sends it. */
export interface GraphError {
  status: number;
  code: number;
  message: string;
  details?: string;
}

export function graphErrorBody(e: GraphError): unknown {
  return {
    error: {
      message: e.message,
      type: e.code === 190 ? "OAuthException" : "OAuthException",
      code: e.code,
      ...(e.details ? { error_data: { messaging_product: "whatsapp", details: e.details } } : {}),
      fbtrace_id: `A${Math.random().toString(36).slice(2, 14)}`,
    },
  };
}

export const INVALID_TOKEN: GraphError = {
  status: 401,
  code: 190,
  message: "Invalid OAuth access token - Cannot parse access token",
};

export const WINDOW_CLOSED: GraphError = {
  status: 400,
  code: 131047,
  message: "Re-engagement message",
  details:
    "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
};

export const RATE_LIMITS = {
  130429: { status: 400, code: 130429, message: "Rate limit hit" },
  131056: {
    status: 400,
    code: 131056,
    message: "(Business Account, Consumer Account) pair rate limit hit",
  },
} as const satisfies Record<number, GraphError>;

export function invalidParameter(details: string): GraphError {
  return { status: 400, code: 131009, message: "Parameter value is not valid", details };
}
