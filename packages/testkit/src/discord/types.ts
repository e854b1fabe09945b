export interface DiscordUser {
  id: string;
  username: string;
  global_name?: string | null;
  bot?: boolean;
}

export interface DiscordChannel {
  id: string;
  /** 0 text, 1 DM, 11 public thread. */
  type: 0 | 1 | 11;
  guild_id?: string;
  parent_id?: string;
  name?: string;
  /** A DM's other person. */
  recipient?: DiscordUser;
  /** A DM's bot (one emulator may host several). */
  botId?: string;
  /** false: the bot lacks Read Message History here (reading it answers 403). */
  readHistory?: boolean;
}

/** A component as the bot sent it (action rows of buttons or one select menu). */
export interface DiscordComponent {
  type: number;
  style?: number;
  label?: string;
  custom_id?: string;
  url?: string;
  options?: { label: string; value: string; description?: string }[];
  components?: DiscordComponent[];
}

/** A message in a channel, as people see it. */
export interface DiscordMessage {
  id: string;
  channel_id: string;
  guild_id?: string;
  author: DiscordUser;
  content: string;
  components: DiscordComponent[];
  /** Earlier contents, oldest first (each edit pushes the one it replaced). */
  edits: string[];
  deleted: boolean;
  /** The message it replies to. */
  replyTo?: string;
  /**
   * Files attached to it (a person's, or the bot's multipart uploads), served
   * at CDN-style URLs (`<emulator>/attachments/<channel>/<id>/<name>`); `url`
   * makes one claim to be elsewhere (tests of where the bot may fetch).
   */
  attachments: { filename: string; contentType: string; data: Buffer; url?: string }[];
  /** An ephemeral interaction reply: only this user sees it. */
  ephemeralTo?: string;
  /** A deferred answer (type 5): Discord shows "thinking…" until the app edits it in. */
  deferred?: boolean;
  /** The interaction whose answer or follow-up it is (its webhook may edit it). */
  interactionToken?: string;
  timestamp: string;
}

export interface DiscordCall {
  method: string;
  /** The route with ids replaced by `:id` (`POST /channels/:id/messages`). */
  route: string;
  path: string;
  status: number;
  body: unknown;
}

/** An interaction the emulator posted to the app, and what the app answered. */
export interface DiscordInteraction {
  id: string;
  token: string;
  type: number;
  status: number;
  response: { type?: number; data?: Record<string, unknown> } | undefined;
}

export interface DiscordEmulatorOptions {
  botToken: string;
  applicationId?: string;
  botUsername?: string;
  port?: number;
}
