import type {
  SlackAssistantThread,
  SlackChannel,
  SlackChannelType,
  SlackEphemeral,
  SlackFile,
  SlackInstallation,
  SlackMessage,
  SlackUser,
  SlackUserGroup,
} from "./types.ts";

/** Message timestamps: "<unix seconds>.<6 digits>", strictly increasing like Slack's. */
export class TsClock {
  #lastMicros = 0;

  next(): string {
    const now = Date.now() * 1000;
    this.#lastMicros = Math.max(now, this.#lastMicros + 1);
    return formatTs(this.#lastMicros);
  }
}

export function formatTs(micros: number): string {
  const seconds = Math.floor(micros / 1_000_000);
  const fraction = String(micros % 1_000_000).padStart(6, "0");
  return `${seconds}.${fraction}`;
}

const ALPHANUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** Slack-looking ids ("C0A1B2C3D4") that are unique per emulator. */
export class IdSource {
  #counter = 0;

  next(prefix: string): string {
    this.#counter++;
    let n = this.#counter;
    let out = "";
    for (let i = 0; i < 9; i++) {
      out = ALPHANUM[n % 36] + out;
      n = Math.floor(n / 36);
    }
    return `${prefix}0${out}`;
  }
}

export interface TeamInfo {
  id: string;
  name: string;
  domain: string;
}

/** The emulated workspaces: who exists, which channels, what was said. */
export class SlackWorld {
  readonly teams = new Map<string, TeamInfo>();
  readonly installations = new Map<string, SlackInstallation>();
  readonly users = new Map<string, SlackUser>();
  readonly channels = new Map<string, SlackChannel>();
  /** Messages per channel in ts order. */
  readonly messages = new Map<string, SlackMessage[]>();
  readonly files = new Map<string, SlackFile>();
  readonly userGroups = new Map<string, SlackUserGroup>();
  readonly ephemerals: SlackEphemeral[] = [];
  /** Assistant pane threads by `<channel>:<thread ts>`. */
  readonly assistantThreads = new Map<string, SlackAssistantThread>();
  readonly clock = new TsClock();
  readonly ids = new IdSource();

  addUser(user: SlackUser): SlackUser {
    this.users.set(user.id, user);
    return user;
  }

  addChannel(channel: SlackChannel): SlackChannel {
    this.channels.set(channel.id, channel);
    if (!this.messages.has(channel.id)) this.messages.set(channel.id, []);
    return channel;
  }

  /** The bot's DM with a user, created on first use like conversations.open. */
  imFor(userId: string, teamId: string): SlackChannel {
    for (const channel of this.channels.values()) {
      if (channel.type === "im" && channel.user === userId) return channel;
    }
    return this.addChannel({
      id: this.ids.next("D"),
      teamId,
      name: userId,
      type: "im",
      user: userId,
      isMember: true,
      isArchived: false,
      created: Math.floor(Date.now() / 1000),
      topic: "",
      purpose: "",
    });
  }

  ensureChannel(id: string, teamId: string, type?: SlackChannelType): SlackChannel {
    const existing = this.channels.get(id);
    if (existing) return existing;
    const inferred: SlackChannelType =
      type ?? (id.startsWith("D") ? "im" : id.startsWith("G") ? "private" : "public");
    return this.addChannel({
      id,
      teamId,
      name: inferred === "im" ? id : id.toLowerCase(),
      type: inferred,
      isMember: true,
      isArchived: false,
      created: Math.floor(Date.now() / 1000),
      topic: "",
      purpose: "",
    });
  }

  /** Whether a member of `teamId` can see `user` (same team, or a channel both teams share). */
  canSee(teamId: string, user: SlackUser): boolean {
    if (user.teamId === teamId) return true;
    for (const c of this.channels.values()) {
      const teams = [c.teamId, ...(c.sharedWith ?? [])];
      if (teams.includes(teamId) && teams.includes(user.teamId)) return true;
    }
    return false;
  }

  findChannel(ref: string): SlackChannel | undefined {
    const direct = this.channels.get(ref);
    if (direct) return direct;
    const name = ref.replace(/^#/, "");
    for (const channel of this.channels.values()) {
      if (channel.type !== "im" && channel.name === name) return channel;
    }
    return undefined;
  }

  channelMessages(channel: string): SlackMessage[] {
    let list = this.messages.get(channel);
    if (!list) {
      list = [];
      this.messages.set(channel, list);
    }
    return list;
  }

  findMessage(channel: string, ts: string): SlackMessage | undefined {
    return this.messages.get(channel)?.find((m) => m.ts === ts);
  }

  addMessage(message: SlackMessage): SlackMessage {
    this.channelMessages(message.channel).push(message);
    return message;
  }

  /** Replies of a thread (not the parent), oldest first. */
  replies(channel: string, threadTs: string): SlackMessage[] {
    return this.channelMessages(channel).filter(
      (m) => m.threadTs === threadTs && m.ts !== threadTs && !m.deleted,
    );
  }

  resetActivity(): void {
    this.messages.clear();
    for (const id of this.channels.keys()) this.messages.set(id, []);
    this.files.clear();
    this.ephemerals.length = 0;
    this.assistantThreads.clear();
  }
}
