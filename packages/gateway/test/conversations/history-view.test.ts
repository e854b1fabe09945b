import { describe, expect, it } from "vitest";
import { fitBudget, withThreadHistory } from "../../src/conversations/history-view.ts";
import type { HistoryMessage } from "../../src/domain/history.ts";

const msg = (id: number, text: string, extra: Partial<HistoryMessage> = {}): HistoryMessage => ({
  id: String(id),
  author: `person ${id}`,
  at: Date.UTC(2026, 0, 1, 0, id),
  text,
  ...extra,
});

describe("the history budget", () => {
  it("keeps the newest messages within max_messages, oldest first", () => {
    const all = [1, 2, 3, 4, 5].map((i) => msg(i, `m${i}`));
    const { kept, dropped } = fitBudget(all, { maxMessages: 2, maxChars: 1000 });
    expect(kept.map((m) => m.text)).toEqual(["m4", "m5"]);
    expect(dropped).toBe(3);
  });

  it("keeps the newest messages within max_chars, counting attachments", () => {
    const all = [
      msg(1, "a".repeat(50)),
      msg(2, "b".repeat(30), { files: [{ name: "x.csv", size: 3 }] }),
      msg(3, "c".repeat(30)),
    ];
    const { kept } = fitBudget(all, { maxMessages: 10, maxChars: 100 });
    expect(kept.map((m) => m.id)).toEqual(["2", "3"]);
  });

  it("cuts a single message longer than the budget to its end instead of dropping it", () => {
    const { kept, dropped } = fitBudget([msg(1, `${"x".repeat(500)}END`)], {
      maxMessages: 5,
      maxChars: 10,
    });
    expect(kept).toHaveLength(1);
    expect(kept[0]!.text.endsWith("END")).toBe(true);
    expect(kept[0]!.text.length).toBeLessThanOrEqual(11);
    expect(dropped).toBe(0);
  });
});

describe("a turn's text with its thread", () => {
  it("is the message alone when the thread has nothing before it", () => {
    expect(
      withThreadHistory(
        { text: "hi", sender: "Ann" },
        { messages: [], older: false, platform: "slack" },
      ),
    ).toBe("hi");
  });

  it("puts the thread first as data, marks the assistant, notes what is left out, ends with the sender's message", () => {
    const text = withThreadHistory(
      { text: "summarize this", sender: "Ann" },
      {
        messages: [
          msg(1, "the plan is <b>", { files: [{ name: "plan.pdf", mimeType: "application/pdf" }] }),
          msg(2, "noted", { fromAssistant: true }),
        ],
        older: true,
        platform: "slack",
      },
    );
    expect(text).toContain('<thread_history platform="slack" messages="2">');
    expect(text).toContain('<message author="person 1" at="2026-01-01T00:01:00.000Z">');
    expect(text).toContain("the plan is &lt;b&gt;\n[attachment: plan.pdf, application/pdf]");
    expect(text).toContain('<message author="you (the assistant)" role="assistant"');
    expect(text).toContain("Older messages of this thread are not shown");
    expect(text.endsWith("The message you are answering, from Ann:\nsummarize this")).toBe(true);
  });

  it("after an earlier turn in the thread, says so, and gives nothing when only the agent spoke since", () => {
    const since = withThreadHistory(
      { text: "and now?", sender: "Ann" },
      {
        messages: [msg(1, "my reply", { fromAssistant: true })],
        older: false,
        seenBefore: true,
        platform: "slack",
      },
    );
    expect(since).toBe("and now?");
    const more = withThreadHistory(
      { text: "and now?", sender: "Ann" },
      {
        messages: [msg(1, "my reply", { fromAssistant: true }), msg(2, "new words")],
        older: false,
        seenBefore: true,
        platform: "slack",
      },
    );
    expect(more).toContain("Messages of this thread since your last turn in it");
    expect(more).toContain("new words");
  });
});
