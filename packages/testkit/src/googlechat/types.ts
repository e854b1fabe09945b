/** A Cards v2 button as the app sent it (the fields the emulator reads). */
export interface ChatButton {
  text?: string;
  onClick?: {
    action?: {
      function?: string;
      parameters?: { key: string; value: string }[];
      /** OPEN_DIALOG: the click may be answered with a dialog. */
      interaction?: string;
    };
    openLink?: { url: string };
  };
}

export interface ChatCardWithId {
  cardId?: string;
  card?: { sections?: { widgets?: { buttonList?: { buttons?: ChatButton[] } }[] }[] };
}

export interface ChatPerson {
  /** The Chat user id (digits); the resource name is `users/<id>`. */
  id: string;
  displayName?: string;
}

export interface ChatSpace {
  name: string;
  spaceType: "DIRECT_MESSAGE" | "SPACE" | "GROUP_CHAT";
  displayName?: string;
  /** A DM between one person and the app. */
  singleUserBotDm?: boolean;
}

/** A message in a space, as Chat keeps it. */
export interface GoogleChatMessage {
  name: string;
  space: string;
  thread: string;
  text: string;
  cardsV2: ChatCardWithId[];
  /** `users/<id>` of a person, or `users/app` for the app. */
  sender: string;
  /** The sender's display name, as Chat shows it. */
  senderName?: string;
  /** Only this user (`users/<id>`) sees it (a private message). */
  privateViewer?: string;
  /** Files a person attached (uploaded content), each downloadable at its resource name. */
  attachments?: GoogleChatAttachment[];
  /** Texts it had before each edit, oldest first. */
  edits: string[];
  deleted: boolean;
  at: number;
}

/** A file attached to a message, as Chat keeps it. */
export interface GoogleChatAttachment {
  contentName: string;
  contentType: string;
  /** `attachmentDataRef.resourceName`: what media.download takes. */
  resourceName: string;
  data: Buffer;
}

/** A call the app made to the Chat API or the token endpoint. */
export interface GoogleChatCall {
  method: string;
  /** The route (`POST messages`, `PUT message`, `DELETE message`, `POST token`). */
  route: string;
  path: string;
  status: number;
  /** The error status of a refusal (`RESOURCE_EXHAUSTED`, `INVALID_ARGUMENT`). */
  errorStatus?: string;
  body: unknown;
}

/** One POST of an event to the app's endpoint, and its answer. */
export interface GoogleChatDelivery {
  status: number;
  body: string;
  /** The event as posted (the exact bytes) and the bearer token it carried. */
  event: string;
  token: string;
  error?: string;
}

export type AudienceMode = "project-number" | "endpoint-url";

export interface GoogleChatEmulatorOptions {
  /** The Cloud project number (the token audience in project-number mode). */
  projectNumber: string;
  /** Which bearer tokens the app's endpoint gets (Chat API configuration → Authentication Audience). */
  audience?: AudienceMode;
  /** The slash command id of `/lobu`. */
  lobuCommandId?: number;
  port?: number;
}

/** A dialog the app opened for a person (an actionResponse of type DIALOG). */
export interface GoogleChatDialog {
  /** `users/<id>` of the person who sees it. */
  viewer: string;
  /** The dialog as the app sent it (`dialogAction.dialog`). */
  dialog: {
    body?: {
      header?: { title?: string };
      sections?: { widgets?: { textParagraph?: { text?: string } }[] }[];
    };
  };
}
