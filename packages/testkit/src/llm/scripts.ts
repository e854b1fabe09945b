import { assertValidTurn } from "./reply.ts";
import type { MockTurn, RecordedRequest } from "./types.ts";

interface Keyed {
  match: (req: RecordedRequest) => boolean;
  turns: MockTurn[];
}

/**
 * Scripted turns: keyed queues first (in registration order), then the global FIFO.
 * Keyed queues let concurrent conversations in one test each get their own turns.
 */
export class ScriptBook {
  #global: MockTurn[] = [];
  #keyed: Keyed[] = [];

  script(turns: MockTurn[]): void {
    turns.forEach(assertValidTurn);
    this.#global.push(...turns);
  }

  when(match: (req: RecordedRequest) => boolean, turns: MockTurn[]): void {
    turns.forEach(assertValidTurn);
    if (turns.length > 0) this.#keyed.push({ match, turns: [...turns] });
  }

  /** The next turn for `req`, consuming it; undefined when nothing scripted applies. */
  take(req: RecordedRequest): MockTurn | undefined {
    const index = this.#keyed.findIndex((k) => k.match(req));
    const keyed = this.#keyed[index];
    if (keyed) {
      const turn = keyed.turns.shift();
      if (keyed.turns.length === 0) this.#keyed.splice(index, 1);
      return turn;
    }
    return this.#global.shift();
  }

  reset(): void {
    this.#global = [];
    this.#keyed = [];
  }
}
