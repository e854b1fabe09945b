import type { StreamEntry } from "../port.ts";

/**
 * The newest entries of the streams someone is following, kept in memory so a
 * reader that is caught up (or a few entries behind) is answered without a
 * query. A turn's event stream is followed by the client that sent the message:
 * it read each event back with two queries (one that found nothing, one after
 * the append woke it). One process owns the database file, so every append
 * passes through here; whatever this cannot answer for sure (a cursor it does
 * not know, a stream it forgot, an expired one) goes to the database.
 *
 * A stream is followed from the first read that found nothing after its cursor.
 */
interface Tail {
  /** Nothing committed comes after this id. */
  last: string;
  /** The entry just before `recent[0]` (or `last` when empty): what follows it is `recent`. */
  before: string | undefined;
  /** The newest entries, oldest first, ending at `last`. */
  recent: StreamEntry[];
  /** When the stream expires (ms), as of its last append; unknown before one. */
  expiresAt: number | null | undefined;
  bytes: number;
}

export interface TailLimits {
  streams: number;
  entriesPerStream: number;
  /** Total size of the entries kept, in UTF-16 code units. */
  size: number;
}

const DEFAULT_LIMITS: TailLimits = { streams: 1_024, entriesPerStream: 16, size: 1 << 20 };

export class StreamTails {
  readonly #tails = new Map<string, Tail>();
  readonly #limits: TailLimits;
  #size = 0;

  constructor(limits: TailLimits = DEFAULT_LIMITS) {
    this.#limits = limits;
  }

  /**
   * The entries after `cursor` (at most `limit`, -1: all) when memory holds all
   * of them, [] when nothing follows it; undefined: read the database.
   */
  after(stream: string, cursor: string, limit: number): StreamEntry[] | undefined {
    const tail = this.#tails.get(stream);
    if (!tail) return undefined;
    if (cursor === tail.last) return [];
    if (tail.expiresAt === undefined) return undefined;
    if (tail.expiresAt !== null && tail.expiresAt <= Date.now()) return undefined;

    const at = cursor === tail.before ? -1 : tail.recent.findIndex((e) => e.id === cursor);
    if (at === -1 && cursor !== tail.before) return undefined;
    const from = at + 1;
    const picked = tail.recent.slice(from, limit < 0 ? undefined : from + limit);
    return picked.map((e) => ({ ...e }));
  }

  /** A read found nothing after `cursor`: follow the stream from there. */
  caughtUp(stream: string, cursor: string): void {
    if (this.#tails.get(stream)?.last === cursor) return;
    this.forget(stream);
    if (this.#tails.size >= this.#limits.streams) this.forget(this.#tails.keys().next().value!);
    this.#tails.set(stream, {
      last: cursor,
      before: cursor,
      recent: [],
      expiresAt: undefined,
      bytes: 0,
    });
  }

  /** An append to `stream` was committed; `previous` was its last id before it. */
  appended(
    stream: string,
    entry: StreamEntry,
    previous: string | undefined,
    expiresAt: number | null,
  ): void {
    const tail = this.#tails.get(stream);
    if (!tail) return;
    if (previous !== tail.last) {
      // Not the entry after the one known last (a stream written again): start over from it.
      this.#size -= tail.bytes;
      tail.recent = [];
      tail.bytes = 0;
      tail.before = previous;
    }
    tail.recent.push(entry);
    tail.last = entry.id;
    tail.expiresAt = expiresAt;
    tail.bytes += entry.data.length;
    this.#size += entry.data.length;
    while (tail.recent.length > this.#limits.entriesPerStream) {
      const dropped = tail.recent.shift()!;
      tail.before = dropped.id;
      tail.bytes -= dropped.data.length;
      this.#size -= dropped.data.length;
    }
    // Over the size: forget the streams followed longest ago (this one last).
    for (const name of this.#tails.keys()) {
      if (this.#size <= this.#limits.size) break;
      if (name !== stream) this.forget(name);
    }
  }

  /** Entries were removed, trimmed or the stream deleted: ask the database next time. */
  forget(stream: string): void {
    const tail = this.#tails.get(stream);
    if (!tail) return;
    this.#size -= tail.bytes;
    this.#tails.delete(stream);
  }

  get size(): number {
    return this.#size;
  }

  get streams(): number {
    return this.#tails.size;
  }
}
