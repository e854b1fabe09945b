import type { AgentEvent } from "@lobu/core";
import { describe, expect, it } from "vitest";
import { TurnEvents } from "../../src/runtime/turn-events.ts";

const usage: AgentEvent = {
  type: "usage",
  provider: "anthropic",
  model: "m",
  inputTokens: 1,
  outputTokens: 2,
};

function sink() {
  const got: { events: AgentEvent[]; errors: { code: string; message: string }[] } = {
    events: [],
    errors: [],
  };
  return {
    got,
    emit: (e: AgentEvent) => got.events.push(e),
    fail: (e: { code: string; message: string }) => got.errors.push(e),
  };
}

describe("TurnEvents", () => {
  it("routes a sandbox's events and refusals to the turn running there, and only while it runs", () => {
    const events = new TurnEvents();
    const a = sink();
    const close = events.open("sb_a", a);
    events.emit("sb_a", usage);
    events.emit("sb_b", usage);
    events.fail("sb_a", { code: "budget_exceeded", message: "over" });
    close();
    events.emit("sb_a", usage);
    expect(a.got.events).toEqual([usage]);
    expect(a.got.errors).toEqual([{ code: "budget_exceeded", message: "over" }]);
  });

  it("does not let an earlier turn's close end the next turn's sink", () => {
    const events = new TurnEvents();
    const first = sink();
    const second = sink();
    const closeFirst = events.open("sb_a", first);
    events.open("sb_a", second);
    closeFirst();
    events.emit("sb_a", usage);
    expect(first.got.events).toEqual([]);
    expect(second.got.events).toEqual([usage]);
  });
});
