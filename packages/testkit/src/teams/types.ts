export interface TeamsEmulatorOptions {
  /** The bot's Microsoft App ID (the audience of the tokens the connector signs). */
  appId: string;
  /** Its client secret, checked by the token endpoint. */
  appPassword: string;
  tenantId?: string;
  botName?: string;
  port?: number;
}

/** A person in the tenant, as Teams names them in activities. */
export interface TeamsPerson {
  /** The Bot Framework id (`29:...`). */
  id: string;
  name: string;
  aadObjectId?: string;
}

/** Where an activity happens: a 1:1 chat, a group chat, or a channel (thread ids carry `;messageid=`). */
export interface TeamsConversation {
  id: string;
  type: "personal" | "groupChat" | "channel";
}

/** A card action as the bot sent it. */
export interface TeamsAction {
  type: string;
  title: string;
  verb?: string;
  data?: unknown;
  url?: string;
}

/** A message the bot sent, as people see it. */
export interface TeamsMessage {
  id: string;
  conversationId: string;
  /** The activity it replies to (POST .../activities/{id}). */
  replyTo?: string;
  /** The message's text as Teams shows it (Markdown escapes removed) and its cards' text blocks. */
  text: string;
  /** The card's actions (answer buttons, links). */
  actions: TeamsAction[];
  /** Earlier versions (every update, or card refresh, pushes the previous one). */
  edits: { text: string; actions: TeamsAction[] }[];
  deleted: boolean;
  /** The last activity body the bot sent for it. */
  activity: Record<string, unknown>;
}

/** A call the bot made to the connector or the token endpoint. */
export interface TeamsCall {
  method: string;
  /** `POST activity`, `POST reply`, `PUT activity`, `DELETE activity`, `POST conversation`, `POST token`. */
  route: string;
  conversationId?: string;
  status: number;
}

/** What the bot answered to an activity. */
export interface TeamsDelivery {
  status: number;
  /** The answer's body (an invoke response is JSON). */
  body: string;
  /** The activity as posted, and the token it was posted with (tests replay them). */
  raw: string;
  token: string | undefined;
  activity: Record<string, unknown>;
}

/** How a test forges a token (the connector never signs like this). */
export interface ForgeOptions {
  /** Sign with a key the metadata does not publish. */
  foreignKey?: boolean;
  audience?: string;
  issuer?: string;
  /** Seconds from now the token expires (negative: expired). */
  expiresInSec?: number;
  /** The token's serviceurl claim (the activity keeps the real one). */
  serviceUrl?: string;
  /** A key published but not endorsed for msteams. */
  unendorsedKey?: boolean;
}
