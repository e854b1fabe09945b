import { describe, expect, it } from "vitest";
import { StreamTails } from "../../src/store/sqlite/stream-tails.ts";

const entry = (id: string, data = `d${id}`) => ({ id, data });

describe("StreamTails", () => {
  it("answers only for followed streams, and only cursors it can vouch for", () => {
    const tails = new StreamTails();
    expect(tails.after("s", "1-0", -1)).toBeUndefined();
    tails.caughtUp("s", "1-0");
    expect(tails.after("s", "1-0", -1)).toEqual([]);
    tails.appended("s", entry("2-0"), "1-0", null);
    tails.appended("s", entry("2-1"), "2-0", null);
    expect(tails.after("s", "1-0", -1)).toEqual([entry("2-0"), entry("2-1")]);
    expect(tails.after("s", "2-0", -1)).toEqual([entry("2-1")]);
    expect(tails.after("s", "1-0", 1)).toEqual([entry("2-0")]);
    expect(tails.after("s", "2-1", -1)).toEqual([]);
    // A cursor older than what is kept, or one it never saw: the database answers.
    expect(tails.after("s", "0-5", -1)).toBeUndefined();
    expect(tails.after("s", "1-5", -1)).toBeUndefined();
    // Not followed: appends are not kept.
    tails.appended("other", entry("3-0"), undefined, null);
    expect(tails.after("other", "2-9", -1)).toBeUndefined();
  });

  it("starts over when an append does not follow the last entry it knows", () => {
    const tails = new StreamTails();
    tails.caughtUp("s", "5-0");
    tails.appended("s", entry("6-0"), "5-0", null);
    // The stream was deleted and written again: its first entry has no previous one.
    tails.appended("s", entry("7-0"), undefined, null);
    expect(tails.after("s", "6-0", -1)).toBeUndefined();
    expect(tails.after("s", "5-0", -1)).toBeUndefined();
    expect(tails.after("s", "7-0", -1)).toEqual([]);
    tails.appended("s", entry("7-1"), "7-0", null);
    expect(tails.after("s", "7-0", -1)).toEqual([entry("7-1")]);
  });

  it("does not answer for an expired stream, nor hand out entries callers could change", () => {
    const tails = new StreamTails();
    tails.caughtUp("s", "1-0");
    tails.appended("s", entry("2-0"), "1-0", Date.now() - 1);
    expect(tails.after("s", "1-0", -1)).toBeUndefined();
    tails.caughtUp("t", "1-0");
    tails.appended("t", entry("2-0"), "1-0", Date.now() + 60_000);
    const got = tails.after("t", "1-0", -1)!;
    got[0]!.data = "changed";
    expect(tails.after("t", "1-0", -1)).toEqual([entry("2-0")]);
  });

  it("keeps within its limits: entries per stream, streams, and total size", () => {
    const tails = new StreamTails({ streams: 2, entriesPerStream: 3, size: 100 });
    tails.caughtUp("s", "0-0");
    for (let i = 1; i <= 5; i++) tails.appended("s", entry(`${i}-0`, "x"), `${i - 1}-0`, null);
    expect(tails.after("s", "2-0", -1)).toEqual([3, 4, 5].map((i) => entry(`${i}-0`, "x")));
    expect(tails.after("s", "1-0", -1)).toBeUndefined();
    tails.caughtUp("t", "0-0");
    tails.caughtUp("u", "0-0");
    expect(tails.streams).toBe(2);
    expect(tails.after("s", "5-0", -1)).toBeUndefined();
    // 60 + 60 > 100: the stream followed longest ago goes.
    tails.appended("t", entry("1-0", "y".repeat(60)), "0-0", null);
    tails.appended("u", entry("1-0", "z".repeat(60)), "0-0", null);
    expect(tails.after("t", "0-0", -1)).toBeUndefined();
    expect(tails.after("u", "0-0", -1)).toEqual([entry("1-0", "z".repeat(60))]);
    expect(tails.size).toBe(60);
    tails.forget("u");
    expect(tails.size).toBe(0);
    expect(tails.streams).toBe(0);
  });
});
