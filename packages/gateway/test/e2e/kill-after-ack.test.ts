import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWorld, until, type World } from "./sandboxes-kit.ts";

/**
 * Accepted means durable: the SQLite queue commits the messages of one event-loop
 * turn together (group commit) and answers 202 only once their batch is on disk.
 * Many people send at once; the real gateway process is killed with SIGKILL the
 * moment a share of the answers has arrived, while other requests are still in
 * flight. After a restart every message that got its 202 must run to `done`.
 */

const SENDERS = 40;
const KILL_AFTER = 25;

describe("a gateway killed right after acknowledging messages", () => {
  let w: World;

  beforeAll(async () => {
    w = await startWorld({
      driver: "virtual",
      toml: `idle_timeout = "10m"\npool_size = 1\nmax_concurrent = 4\n`,
    });
  }, 120_000);

  afterAll(async () => {
    await w?.close();
  });

  it("runs every acknowledged message after the restart", async () => {
    const acked: string[] = [];
    let killing: Promise<void> | undefined;
    const sends = Array.from({ length: SENDERS }, async (_, i) => {
      try {
        const id = await w.post(`ack-${i}`, `acked message ${i}`);
        // Every 202 counts, also one that arrived while the kill was under way.
        acked.push(id);
        // No await between the 202 and the kill: nothing more can be written meanwhile.
        if (acked.length === KILL_AFTER) killing = w.gw.kill("SIGKILL");
      } catch {
        // Cut off by the kill: never acknowledged, so nothing is promised.
      }
    });
    await Promise.all(sends);
    await killing;
    expect(acked.length).toBeGreaterThanOrEqual(KILL_AFTER);

    await w.gw.restart();
    const statuses = await until(async () => {
      const all = await Promise.all(acked.map((id) => w.message(id)));
      return all.every((m) => m.status === "done" || m.status === "error")
        ? all.map((m) => m.status)
        : undefined;
    }, 250);
    expect(statuses).toEqual(acked.map(() => "done"));
  }, 240_000);
});
