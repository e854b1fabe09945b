import { type ConversationKey, describeKey } from "@lobu/core";
import type { ExitInfo } from "../sandbox/driver.ts";
import { KeyedQueue } from "../sandbox/keyed-queue.ts";
import type { KeyValue } from "../store/port.ts";
import type { SandboxHealth } from "./sandbox-health.ts";

/** What the gateway remembers about a sandbox between runs (stored). */
export interface SandboxRecord {
  id: string;
  key: ConversationKey;
  label: string;
  driver: string;
  createdAt: number;
  lastActiveAt: number;
  lastStartedAt?: number;
  lastExit?: ExitInfo & { at: number };
  starts: number;
  health?: SandboxHealth;
  /** Told to the user at the start of the next turn (repairs, resets). */
  pendingNotice?: string;
  lastSnapshotAt?: number;
  lastRepair?: { at: number; reason: string; detail?: string; snapshot: string | null; by: string };
}

const recordKey = (id: string) => `sandbox:${id}`;

/**
 * The stored sandbox records. Changes are read-modify-write: one at a time
 * per sandbox, in the order they were asked for.
 */
export class SandboxRecords {
  readonly #kv: KeyValue;
  readonly #driver: string;
  readonly #ops = new KeyedQueue();

  /** `driver`: the name of the driver running sandboxes now (recorded on every start). */
  constructor(kv: KeyValue, driver: string) {
    this.#kv = kv;
    this.#driver = driver;
  }

  async get(id: string): Promise<SandboxRecord | null> {
    const raw = await this.#kv.get(recordKey(id));
    return raw ? (JSON.parse(raw) as SandboxRecord) : null;
  }

  /** The record once the changes queued before this call are written. */
  settled(id: string): Promise<SandboxRecord | null> {
    return this.#ops.run(id, () => this.get(id));
  }

  async list(): Promise<SandboxRecord[]> {
    return (await this.#kv.list("sandbox:")).map((e) => JSON.parse(e.value) as SandboxRecord);
  }

  /** Change the record, creating it for `key` first when there is none. */
  update(
    id: string,
    key: ConversationKey,
    change: (r: SandboxRecord) => SandboxRecord,
  ): Promise<SandboxRecord> {
    return this.#ops.run(id, async () => {
      const now = Date.now();
      const existing = await this.get(id);
      const base: SandboxRecord = existing ?? {
        id,
        key,
        label: describeKey(key),
        driver: this.#driver,
        createdAt: now,
        lastActiveAt: now,
        starts: 0,
      };
      const next = change({ ...base, driver: this.#driver });
      await this.#kv.set(recordKey(id), JSON.stringify(next));
      return next;
    });
  }

  /** Change an existing record (none: nothing happens). Returning the same record writes nothing. */
  patch(
    id: string,
    change: (r: SandboxRecord) => SandboxRecord,
  ): Promise<SandboxRecord | undefined> {
    return this.#ops.run(id, async () => {
      const existing = await this.get(id);
      if (!existing) return undefined;
      const next = change(existing);
      if (next !== existing) await this.#kv.set(recordKey(id), JSON.stringify(next));
      return next;
    });
  }

  async patchHealth(
    id: string,
    change: (h: SandboxHealth) => SandboxHealth,
  ): Promise<SandboxHealth | undefined> {
    return (await this.patch(id, (r) => ({ ...r, health: change({ ...r.health }) })))?.health;
  }
}
