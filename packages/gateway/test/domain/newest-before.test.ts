import { describe, expect, it } from "vitest";
import { newestBefore } from "../../src/domain/history.ts";

/** Pages of numbers, newest (largest) first, `size` per page. */
function pages(newest: number, size: number) {
  const read = async (cursor: string | undefined) => {
    const top = cursor ? Number(cursor) : newest;
    const messages = Array.from({ length: Math.min(size, top) }, (_, i) => top - i);
    const last = top - messages.length;
    return { messages, ...(last > 0 ? { next: String(last) } : {}) };
  };
  return read;
}

describe("newestBefore", () => {
  it("keeps the newest before the answered message, oldest first, and says when more are left", async () => {
    const got = await newestBefore({
      read: pages(20, 4),
      skip: (m) => m >= 18,
      reached: () => false,
      limit: 5,
      maxPages: 10,
    });
    expect(got).toEqual({ kept: [13, 14, 15, 16, 17], earlier: true, exhausted: false });
  });

  it("stops at the last turn's message without keeping it", async () => {
    const got = await newestBefore({
      read: pages(20, 4),
      skip: (m) => m >= 18,
      reached: (m) => m === 15,
      limit: 10,
      maxPages: 10,
    });
    expect(got).toEqual({ kept: [16, 17], earlier: false, exhausted: false });
  });

  it("reads every page of a short history and says it was all", async () => {
    const got = await newestBefore({
      read: pages(6, 4),
      skip: (m) => m === 6,
      reached: () => false,
      limit: 10,
      maxPages: 10,
    });
    expect(got).toEqual({ kept: [1, 2, 3, 4, 5], earlier: false, exhausted: true });
  });

  it("reads no more than maxPages, and says older ones may exist", async () => {
    let reads = 0;
    const read = pages(100, 3);
    const got = await newestBefore({
      read: (c) => {
        reads++;
        return read(c);
      },
      skip: () => false,
      reached: () => false,
      limit: 50,
      maxPages: 2,
    });
    expect(reads).toBe(2);
    expect(got).toEqual({ kept: [95, 96, 97, 98, 99, 100], earlier: true, exhausted: false });
  });
});
