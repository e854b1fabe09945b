import { createHash } from "node:crypto";
import { errorMessage, LobuError } from "@lobu/core";
import type { ErasedCounts, Person, PersonDataKind } from "../domain/person-data.ts";

/** The export bundle: what the gateway holds about one person, kind by kind (docs/retention.md). */
export interface PersonBundle {
  format: "lobu-person-export/v1";
  userKey: string;
  exportedAt: string;
  /** One entry per registered kind of person data. */
  data: Record<string, unknown>;
}

export interface ErasureReport {
  /** The digest the audit record of the erasure names the person by. */
  subject: string;
  erased: Record<string, ErasedCounts>;
}

/** Audit sink: the erasure's own record. */
export type ErasureAudit = (entry: {
  action: string;
  actor: string;
  details: Record<string, unknown>;
}) => void;

/**
 * A pseudonym of the person for the record that outlives their erasure: it
 * does not name them, yet whoever knows the user key can check that this
 * person was erased (and when).
 */
export function personDigest(userKey: string): string {
  return `person:${createHash("sha256").update(`lobu-person\n${userKey}`).digest("hex").slice(0, 24)}`;
}

/**
 * Export and erasure of everything about one person, over every registered
 * kind of person data (wiring/person-data.ts lists them; a new kind is one
 * line there).
 */
export class PersonData {
  readonly #kinds: readonly PersonDataKind[];
  readonly #audit: ErasureAudit;
  readonly #now: () => number;

  constructor(kinds: readonly PersonDataKind[], audit: ErasureAudit, now: () => number = Date.now) {
    const names = kinds.map((k) => k.name);
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice) throw new Error(`person data kind "${twice}" is registered twice`);
    this.#kinds = kinds;
    this.#audit = audit;
    this.#now = now;
  }

  get kinds(): string[] {
    return this.#kinds.map((k) => k.name);
  }

  async export(person: Person): Promise<PersonBundle> {
    const data: Record<string, unknown> = {};
    for (const kind of this.#kinds) {
      const part = await kind.export(person);
      if (part !== undefined) data[kind.name] = part;
    }
    return {
      format: "lobu-person-export/v1",
      userKey: person.userKey,
      exportedAt: new Date(this.#now()).toISOString(),
      data,
    };
  }

  /**
   * Erase every kind, after checking none is busy (a running or queued turn:
   * `person_busy`, nothing erased). A kind that fails does not stop the
   * others; the erasure then fails naming it, and running it again finishes
   * the job (every kind's erase can run twice). `by` is the actor: the person
   * themselves is recorded by their digest too.
   */
  async erase(person: Person, by: string): Promise<ErasureReport> {
    for (const kind of this.#kinds) {
      const why = await kind.busy?.(person);
      if (why)
        throw new LobuError("person_busy", `${person.userKey} cannot be erased now: ${why}`, {
          status: 409,
          hint: "Wait for the turn to finish (or stop it), then erase again.",
        });
    }
    const subject = personDigest(person.userKey);
    const erased: Record<string, ErasedCounts> = {};
    const failed: string[] = [];
    for (const kind of this.#kinds) {
      try {
        erased[kind.name] = await kind.erase(person);
      } catch (err) {
        failed.push(`${kind.name} (${errorMessage(err)})`);
      }
    }
    // Kept without payload: who asked, whom (by digest) and what was removed.
    this.#audit({
      action: failed.length ? "person.erase_failed" : "person.erased",
      actor: by === person.userKey ? subject : by,
      details: { subject, erased, ...(failed.length ? { failed } : {}) },
    });
    if (failed.length)
      throw new LobuError("internal", `erasing ${subject} failed for ${failed.join(", ")}`, {
        status: 500,
        hint: "Run the erasure again: what was removed stays removed, and the rest is tried again.",
      });
    return { subject, erased };
  }
}
