import { randomBytes } from "node:crypto";
import { createLogger } from "@lobu/core";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { SandboxPlacement } from "../../src/runtime/placement.ts";
import { SandboxControl } from "../../src/runtime/sandbox-control.ts";
import { createStore } from "../../src/store/index.ts";
import type { Store } from "../../src/store/port.ts";
import { waitFor } from "../store/contract.ts";

/**
 * Placement of sandboxes on gateways sharing Redis (runtime/placement.ts):
 * one holder at a time, epochs that only grow, a hold lost when its lease
 * lapses, and the queue leaving a placed sandbox's messages to its holder.
 * Each gateway is its own store connection, on a key prefix of its own test.
 */

const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const log = createLogger("test");
let prefix = "";
const opened: Store[] = [];
const placements: SandboxPlacement[] = [];

afterEach(async () => {
  for (const p of placements.splice(0)) await p.close();
  for (const s of opened.splice(0)) await s.close();
  const redis = new Redis(url);
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
});

async function gateways(n: number, leaseMs = 60_000) {
  prefix = `lobu-test:${randomBytes(6).toString("hex")}:`;
  const out: { store: Store; placement: SandboxPlacement }[] = [];
  for (let i = 0; i < n; i++) {
    const store = await createStore({ driver: "redis", url, prefix });
    opened.push(store);
    const placement = new SandboxPlacement({
      locks: store.locks,
      kv: store.kv,
      owner: `gw-${i}`,
      leaseMs,
      log,
    });
    placements.push(placement);
    out.push({ store, placement });
  }
  return out;
}

describe("sandbox placement", () => {
  it("holds a sandbox on one gateway at a time, with a growing epoch", async () => {
    const [a, b] = await gateways(2);
    const first = await a!.placement.acquire("sbx");
    expect(first?.epoch).toBe(1);
    expect(await b!.placement.acquire("sbx")).toBeNull();
    expect(await b!.placement.holder("sbx")).toBe("gw-0");
    // A second hold on the same gateway joins the first; both must go before it is free.
    expect((await a!.placement.acquire("sbx"))?.epoch).toBe(1);
    await a!.placement.release("sbx");
    expect(await b!.placement.acquire("sbx")).toBeNull();
    await a!.placement.release("sbx");
    const second = await b!.placement.acquire("sbx");
    expect(second?.epoch).toBe(2);
    expect(first?.lost.aborted).toBe(false);
  });

  it("loses a hold whose lease lapsed (a stalled gateway), and tells the sandbox to stop", async () => {
    const [a, b] = await gateways(2, 300);
    const lostIds: string[] = [];
    a!.placement.onLost((id) => lostIds.push(id));
    const held = await a!.placement.acquire("sbx");
    // Not renewing (as a frozen gateway): the lease lapses and another gateway takes it.
    await new Promise((r) => setTimeout(r, 450));
    const taken = await b!.placement.acquire("sbx");
    expect(taken?.epoch).toBe(2);
    a!.placement.start();
    await waitFor(() => held!.lost.aborted, "the lost hold to be noticed", 5_000);
    expect(lostIds).toEqual(["sbx"]);
    expect(a!.placement.holds("sbx")).toBe(false);
    // Its release cannot free the new holder's lease.
    await a!.placement.release("sbx");
    expect(await a!.placement.holder("sbx")).toBe("gw-1");
  });

  it("keeps a renewed hold past its lease", async () => {
    const [a, b] = await gateways(2, 300);
    a!.placement.start();
    const held = await a!.placement.acquire("sbx");
    await new Promise((r) => setTimeout(r, 900));
    expect(held?.lost.aborted).toBe(false);
    expect(await b!.placement.acquire("sbx")).toBeNull();
  });

  it("leaves a placed sandbox's messages to its gateway", async () => {
    const [a, b] = await gateways(2);
    await a!.store.queue.enqueue("sbx", "m1");
    await a!.placement.acquire("sbx");
    const opts = { placement: a!.placement.lockPrefix };
    expect(await b!.store.queue.claim("gw-1", 60_000, opts)).toBeNull();
    expect((await a!.store.queue.claim("gw-0", 60_000, opts))?.payload).toBe("m1");
  });
});

describe("sandbox commands between gateways", () => {
  it("runs a command on the gateway asked, and carries its result and its refusal back", async () => {
    const [a, b] = await gateways(2);
    const onA = new SandboxControl({ pubsub: a!.store.pubsub, owner: "gw-0", log });
    const fromB = new SandboxControl({ pubsub: b!.store.pubsub, owner: "gw-1", log });
    await onA.serve(async (command) => {
      if (command.op === "stop") return true;
      throw new Error(`cannot ${command.op}`);
    });
    expect(await fromB.ask("gw-0", { op: "stop", id: "sbx", reason: "operator" })).toBe(true);
    await expect(fromB.ask("gw-0", { op: "destroy", id: "sbx" })).rejects.toThrow(
      /on gw-0: cannot destroy/,
    );
    // Malformed commands are dropped, not run.
    await b!.store.pubsub.publish("sandbox-control:gw-0", JSON.stringify({ op: "rm -rf" }));
    const silent = new SandboxControl({
      pubsub: b!.store.pubsub,
      owner: "gw-1",
      log,
      timeoutMs: 200,
    });
    await expect(silent.ask("gw-nobody", { op: "stop", id: "sbx", reason: "x" })).rejects.toThrow(
      /did not answer/,
    );
    await onA.close();
  });
});
