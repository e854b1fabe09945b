import { stillReachable } from "@lobu/testkit";
import { describe, expect, it } from "vitest";
import { whenFulfilled } from "../../src/util/settle-watch.ts";
import { countReactions } from "./linked-worker.ts";

/** A promise to settle by hand, and the reactions put on it. */
function counted<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject, seen: countReactions(promise) };
}

describe("whenFulfilled", () => {
  it("keeps no waiter alive once it unsubscribed, the first one included", async () => {
    const p = counted<number>();
    const refs: WeakRef<object>[] = [];
    for (let i = 0; i < 3; i++) {
      const held = { turn: i };
      refs.push(new WeakRef(held));
      whenFulfilled(p.promise, () => held.turn)();
    }
    expect(await stillReachable(refs)).toEqual([]);
    p.resolve(1);
  });

  it("puts one reaction on the promise however many waiters come and go", async () => {
    const p = counted<string>();
    const called: string[] = [];
    for (let i = 0; i < 50; i++) whenFulfilled(p.promise, () => called.push(`gone ${i}`))();
    whenFulfilled(p.promise, (v) => called.push(`kept ${v}`));
    expect(p.seen.count).toBe(1);
    p.resolve("x");
    await p.promise;
    await Promise.resolve();
    expect(called).toEqual(["kept x"]);
  });

  it("calls a waiter that comes after the promise fulfilled", async () => {
    const p = counted<number>();
    whenFulfilled(p.promise, () => {});
    p.resolve(7);
    await p.promise;
    await Promise.resolve();
    const late = await new Promise<number>((resolve) => whenFulfilled(p.promise, resolve));
    expect(late).toBe(7);
  });

  it("never calls a waiter when the promise rejects, and leaves its failure to its owner", async () => {
    const p = counted<number>();
    let called = false;
    whenFulfilled(p.promise, () => {
      called = true;
    });
    p.reject(new Error("owner's"));
    await expect(p.promise).rejects.toThrow("owner's");
    await Promise.resolve();
    expect(called).toBe(false);
  });
});
