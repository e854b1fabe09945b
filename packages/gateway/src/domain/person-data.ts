import type { ConversationKey } from "@lobu/core";
import { LobuError } from "@lobu/core";

/**
 * A person, as the gateway keys what it holds about them: the user key
 * `platform:workspace:user` (domain/origin.ts `userKeyOf`) and its parts.
 */
export interface Person {
  userKey: string;
  platform: string;
  /** "" on platforms without workspaces. */
  workspace: string;
  userId: string;
}

/** Platform ids and workspaces never contain `:`; a user id is the rest (API users may contain one). */
const USER_KEY = /^([a-z0-9][a-z0-9_-]{0,31}):([A-Za-z0-9_.-]{0,64}):(.{1,256})$/s;
/** Control characters, path separators and parent-directory steps: never part of a user id. */
const UNSAFE = /[\p{Cc}\\/]|^\.\.?$|^\*$/u;

/**
 * Read a user key from outside (a URL, the CLI). Refuses (400) anything that
 * is not one: a user key is never used as a path, but a malformed one is a
 * mistake or a probe, and must not match anything by accident (`*` is the
 * shared user of per-channel conversations).
 */
export function parsePersonKey(userKey: string): Person {
  const m = USER_KEY.exec(userKey);
  if (!m || UNSAFE.test(m[3]!)) {
    throw new LobuError("invalid_request", `"${userKey.slice(0, 80)}" is not a user key`, {
      status: 400,
      hint: "A user key is platform:workspace:user, e.g. slack:T0123:U0456, telegram::12345 or api:myapp:alice (see docs/retention.md).",
    });
  }
  return { userKey, platform: m[1]!, workspace: m[2]!, userId: m[3]! };
}

/** Is `key` a conversation of this person alone (not a shared per-channel one)? */
export function ownsConversation(person: Person, key: ConversationKey): boolean {
  return (
    key.platform === person.platform &&
    (key.workspace ?? "") === person.workspace &&
    key.userId === person.userId
  );
}

/** What one kind of person data reports after an erasure: counts by what was removed. */
export type ErasedCounts = Record<string, number>;

/**
 * One kind of per-person data (settings, secrets, transcripts, sandboxes, ...).
 * Every kind registers in `wiring/person-data.ts` with one line; an export
 * and an erasure go through all of them (people/person-data.ts).
 */
export interface PersonDataKind {
  /** Names the kind's part of the export bundle and of the erasure report. */
  readonly name: string;
  /**
   * What is held about the person, as JSON for the export bundle. Never
   * secret values: names and metadata only.
   */
  export(person: Person): Promise<unknown>;
  /** Remove (or anonymize) everything of this kind about the person. */
  erase(person: Person): Promise<ErasedCounts>;
  /**
   * Why the person's data cannot be erased right now (a running or queued
   * turn), or undefined. Checked on every kind before anything is erased.
   */
  busy?(person: Person): Promise<string | undefined>;
}
