import { ConversationKey, describeKey } from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import { ExitInfo } from "../sandbox/driver.ts";
import { KeyedQueue } from "../sandbox/keyed-queue.ts";
import type { KeyValue } from "../store/port.ts";
import { readRecord } from "../util/stored-record.ts";
import { SandboxHealth } from "./sandbox-health.ts";

/** What the gateway remembers about a sandbox between runs (stored as `sandbox:<id>`). */
export const SandboxRecord = z.object({
  id: z.string().min(1),
  key: ConversationKey,
  label: z.string(),
  driver: z.string(),
  createdAt: z.number(),
  lastActiveAt: z.number(),
  lastStartedAt: z.number().optional(),
  lastExit: ExitInfo.extend({ at: z.number() }).optional(),
  starts: z.number(),
  health: SandboxHealth.optional(),
  /** Told to the user at the start of the next turn (repairs, resets). */
  pendingNotice: z.string().optional(),
  lastSnapshotAt: z.number().optional(),
  /** Several gateways: the gateway it last started on and the placement epoch (runtime/placement.ts). */
  placement: z.object({ gateway: z.string(), epoch: z.number() }).optional(),
  lastRepair: z
    .object({
      at: z.number(),
      reason: z.string(),
      detail: z.string().optional(),
      snapshot: z.string().nullable(),
      by: z.string(),
    })
    .optional(),
});
export type SandboxRecord = z.infer<typeof SandboxRecord>;

const recordKey = (id: string) => `sandbox:${id}`;

/**
 * The stored sandbox records. Changes are read-modify-write (kv.update, so
 * other gateways' changes are not lost): one at a time per sandbox on this
 * gateway, in the order they were asked for. An unreadable record (logged)
 * reads as none: the next start writes a fresh one.
 */
export class SandboxRecords {
  readonly #kv: KeyValue;
  readonly #driver: string;
  readonly #log: Logger;
  readonly #ops = new KeyedQueue();

  /** `driver`: the name of the driver running sandboxes now (recorded on every start). */
  constructor(kv: KeyValue, driver: string, log: Logger) {
    this.#kv = kv;
    this.#driver = driver;
    this.#log = log;
  }

  async get(id: string): Promise<SandboxRecord | null> {
    const raw = await this.#kv.get(recordKey(id));
    return raw === null ? null : (this.#decode(id, raw) ?? null);
  }

  /** The record once the changes queued before this call are written. */
  settled(id: string): Promise<SandboxRecord | null> {
    return this.#ops.run(id, () => this.get(id));
  }

  async list(): Promise<SandboxRecord[]> {
    return this.#decodeAll(await this.#kv.list("sandbox:"));
  }

  /** At most `limit` records in id order, after the id `after`. */
  async page(opts: { after?: string; limit: number }): Promise<SandboxRecord[]> {
    const after = opts.after === undefined ? {} : { after: recordKey(opts.after) };
    return this.#decodeAll(await this.#kv.list("sandbox:", { limit: opts.limit, ...after }));
  }

  #decodeAll(rows: { key: string; value: string }[]): SandboxRecord[] {
    return rows.flatMap((e) => this.#decode(e.key.slice("sandbox:".length), e.value) ?? []);
  }

  /** Forget the sandbox (its data is gone): after the changes queued before this call. */
  delete(id: string): Promise<boolean> {
    return this.#ops.run(id, () => this.#kv.del(recordKey(id)));
  }

  /** Change the record, creating it for `key` first when there is none (`change` may run more than once). */
  update(
    id: string,
    key: ConversationKey,
    change: (r: SandboxRecord) => SandboxRecord,
  ): Promise<SandboxRecord> {
    return this.#ops.run(id, async () => {
      let next!: SandboxRecord;
      await this.#kv.update(recordKey(id), (raw) => {
        const now = Date.now();
        const existing = raw === null ? undefined : this.#decode(id, raw, "replaced by a new one");
        const base: SandboxRecord = existing ?? {
          id,
          key,
          label: describeKey(key),
          driver: this.#driver,
          createdAt: now,
          lastActiveAt: now,
          starts: 0,
        };
        next = change({ ...base, driver: this.#driver });
        return JSON.stringify(next);
      });
      return next;
    });
  }

  /** Change an existing record (none: nothing happens). Returning the same record writes nothing. */
  patch(
    id: string,
    change: (r: SandboxRecord) => SandboxRecord,
  ): Promise<SandboxRecord | undefined> {
    return this.#ops.run(id, async () => {
      let next: SandboxRecord | undefined;
      await this.#kv.update(recordKey(id), (raw) => {
        const existing = raw === null ? undefined : this.#decode(id, raw, "left as it is");
        next = existing && change(existing);
        return next && next !== existing ? JSON.stringify(next) : undefined;
      });
      return next;
    });
  }

  async patchHealth(
    id: string,
    change: (h: SandboxHealth) => SandboxHealth,
  ): Promise<SandboxHealth | undefined> {
    return (await this.patch(id, (r) => ({ ...r, health: change({ ...r.health }) })))?.health;
  }

  #decode(id: string, raw: string, what = "reads as none"): SandboxRecord | undefined {
    const source = { record: "sandbox record", key: recordKey(id) };
    return readRecord(SandboxRecord, raw, source, this.#log, what);
  }
}
