/**
 * What a platform says about the sender of a message and the channel it came
 * from, for the access check (agents/access.ts). Adapters look these up
 * lazily (only what the agent's access rules need) and cache them briefly.
 */

/** A person as their platform profile describes them. */
export interface SenderProfile {
  /** Workspace (team) the account belongs to; another than the message's means an outsider. */
  team?: string;
  email?: string;
  /** A guest account (Slack `is_restricted` / `is_ultra_restricted`). */
  guest: boolean;
  /** Deactivated (Slack `deleted`). */
  deactivated: boolean;
  bot: boolean;
}

export interface ChannelProfile {
  /** Shared with another organization (Slack Connect `is_ext_shared`, `is_shared`). */
  external: boolean;
}

export interface PlatformFacts {
  /** The sender's profile; undefined when the platform could not say (refused: fail closed). */
  sender(): Promise<SenderProfile | undefined>;
  /** The channel's profile; undefined when the platform could not say (refused: fail closed). */
  channel(): Promise<ChannelProfile | undefined>;
  /**
   * Whether the sender is in a platform group, named as the platform names it
   * (Slack user group id `S0567`, or `admins`); undefined when the platform
   * could not say (a deny by that group then refuses: fail closed).
   */
  inGroup(group: string): Promise<boolean | undefined>;
}
