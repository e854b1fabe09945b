import { errorMessage } from "@lobu/core";
import type { Logger } from "pino";
import { KeyedQueue } from "../sandbox/keyed-queue.ts";
import type { KeyValue, Locks } from "../store/port.ts";

/**
 * Lock-name prefix of placements (`Locks`): `<prefix><sandbox id>` is held by
 * the gateway the sandbox runs on. The queue's `placement` claim option names
 * the same prefix, so other gateways leave that sandbox's messages alone.
 */
export const PLACEMENT_LOCKS = "sandbox-placement:";

const epochKey = (id: string) => `placement-epoch:${id}`;

/** This gateway's hold on one sandbox. */
export interface Placed {
  /**
   * The fencing token: grows by one every time any gateway takes the sandbox,
   * so a later holder always has a larger epoch than an earlier one.
   */
  epoch: number;
  /** Aborted when the hold is lost (its lease lapsed: another gateway may run the sandbox now). */
  lost: AbortSignal;
}

interface Hold {
  token: string;
  epoch: number;
  /** Holders on this gateway (a running turn, the live sandbox, an operator's reset). */
  count: number;
  lost: AbortController;
  /** Last successful renewal (ms). */
  renewedAt: number;
}

export interface PlacementOptions {
  locks: Locks;
  kv: KeyValue;
  /** This gateway instance. */
  owner: string;
  /** Lease length; renewed every third of it. */
  leaseMs: number;
  log: Logger;
}

/**
 * Where each sandbox runs when several gateways share one store: on exactly
 * one gateway at a time, the holder of its placement lease. A gateway takes a
 * sandbox when it claims one of its messages and nobody holds it, keeps it
 * while a turn runs or the sandbox is up (renewing the lease), and lets it go
 * when the sandbox stops. A gateway that dies stops renewing: after at most
 * one lease any survivor may take the sandbox, with the next epoch.
 *
 * A gateway that cannot renew (Redis unreachable, the process stalled past
 * the lease) treats the hold as lost at once: it aborts the sandbox's turn
 * and stops the sandbox, so two gateways never run one sandbox for longer
 * than the renewal interval.
 */
export class SandboxPlacement {
  readonly lockPrefix = PLACEMENT_LOCKS;
  readonly #opts: PlacementOptions;
  readonly #held = new Map<string, Hold>();
  readonly #ops = new KeyedQueue();
  readonly #lostListeners = new Set<(id: string) => void>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: PlacementOptions) {
    this.#opts = opts;
  }

  get owner(): string {
    return this.#opts.owner;
  }

  /** Start renewing held leases. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.#renewAll(), Math.max(50, this.#opts.leaseMs / 3));
    this.#timer.unref();
  }

  /**
   * Take the sandbox for this gateway, or join a hold it already has. Null when
   * another gateway holds it. Every successful call needs one `release`.
   */
  acquire(id: string): Promise<Placed | null> {
    return this.#ops.run(id, async () => {
      if (this.#closed) return null;
      const current = this.#held.get(id);
      if (current) {
        current.count++;
        return { epoch: current.epoch, lost: current.lost.signal };
      }
      const { locks, kv, owner, leaseMs } = this.#opts;
      const token = await locks.acquire(this.lockPrefix + id, owner, leaseMs);
      if (!token) return null;
      const epoch = await kv.incr(epochKey(id));
      const hold: Hold = {
        token,
        epoch,
        count: 1,
        lost: new AbortController(),
        renewedAt: Date.now(),
      };
      this.#held.set(id, hold);
      return { epoch, lost: hold.lost.signal };
    });
  }

  /** Give back one hold; the last one lets the sandbox go (any gateway may take it). */
  release(id: string): Promise<void> {
    return this.#ops.run(id, async () => {
      const hold = this.#held.get(id);
      if (!hold || --hold.count > 0) return;
      this.#held.delete(id);
      await this.#opts.locks.release(this.lockPrefix + id, hold.token).catch((err) =>
        // It lapses by itself after one lease.
        this.#opts.log.warn({ err: errorMessage(err), sandboxId: id }, "placement not released"),
      );
    });
  }

  /**
   * Whether this gateway's hold is still the newest take of the sandbox (the fencing
   * check before writing where the next holder reads): false once another gateway took it.
   */
  async current(id: string): Promise<boolean> {
    const epoch = this.#held.get(id)?.epoch;
    if (epoch === undefined) return false;
    return (await this.#opts.kv.get(epochKey(id))) === String(epoch);
  }

  /** This gateway holds the sandbox. */
  holds(id: string): boolean {
    return this.#held.has(id);
  }

  /** The gateway holding the sandbox, or null when none does. */
  holder(id: string): Promise<string | null> {
    return this.#opts.locks.holder(this.lockPrefix + id);
  }

  /** Told when a hold is lost (the sandbox must stop here). */
  onLost(listener: (id: string) => void): () => void {
    this.#lostListeners.add(listener);
    return () => this.#lostListeners.delete(listener);
  }

  async #renewAll(): Promise<void> {
    const { locks, leaseMs, log } = this.#opts;
    await Promise.all(
      [...this.#held].map(async ([id, hold]) => {
        let ok: boolean;
        try {
          ok = await locks.extend(this.lockPrefix + id, hold.token, leaseMs);
        } catch (err) {
          // Unsure whether it still holds: it keeps the sandbox only while the lease surely runs.
          ok = Date.now() - hold.renewedAt < (leaseMs * 2) / 3;
          log.warn({ err: errorMessage(err), sandboxId: id }, "placement renewal failed");
        }
        if (ok) hold.renewedAt = Date.now();
        else this.#lose(id, hold);
      }),
    );
  }

  #lose(id: string, hold: Hold): void {
    if (this.#held.get(id) !== hold) return;
    this.#held.delete(id);
    this.#opts.log.warn(
      { sandboxId: id, epoch: hold.epoch },
      "lost the placement of a sandbox: stopping it here",
    );
    hold.lost.abort(new Error("placement lost"));
    for (const listener of this.#lostListeners) listener(id);
  }

  /** Stop renewing and let every sandbox go. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    const held = [...this.#held];
    this.#held.clear();
    await Promise.all(
      held.map(([id, hold]) =>
        this.#opts.locks.release(this.lockPrefix + id, hold.token).catch(() => false),
      ),
    );
  }
}
