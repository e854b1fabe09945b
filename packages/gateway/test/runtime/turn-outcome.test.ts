import { TurnErrorCode } from "@lobu/core";
import { describe, expect, it } from "vitest";
import { classifyTurnEnd, type TurnEnd } from "../../src/runtime/turn-outcome.ts";

function end(status: TurnEnd["status"], error?: TurnEnd["error"], text = ""): TurnEnd {
  return { t: "turn_end", sandboxId: "sb_1", turnId: "msg_1.1", status, text, error };
}

const failed = (code: TurnErrorCode, message = "it went wrong") => end("error", { code, message });

describe("classifyTurnEnd", () => {
  it("answers a done turn with its text, and says the sandbox is healthy", () => {
    expect(classifyTurnEnd(end("done", undefined, "Hello!"))).toEqual({
      kind: "done",
      text: "Hello!",
      health: { kind: "healthy" },
    });
  });

  it("delivers the message again when the sandbox was busy, saying nothing about its health", () => {
    expect(classifyTurnEnd(failed("busy"))).toEqual({
      kind: "retry",
      reason: "its sandbox was busy",
      health: { kind: "failed", counts: false, detail: "busy: it went wrong" },
    });
  });

  it("delivers the message again when the saved state is damaged, and breaks the sandbox", () => {
    expect(classifyTurnEnd(failed("state_corrupt", "journal unreadable"))).toEqual({
      kind: "retry",
      reason: "its saved state was damaged",
      health: {
        kind: "failed",
        breaks: "its saved state was damaged",
        counts: false,
        detail: "state_corrupt: journal unreadable",
      },
    });
  });

  it("shows agent and worker failures, counting them toward failures in a row", () => {
    for (const code of ["agent_error", "worker_error"] as const) {
      const outcome = classifyTurnEnd(failed(code));
      expect(outcome).toMatchObject({
        kind: "fail",
        error: { code, message: "it went wrong" },
        health: { kind: "failed", counts: true },
      });
      expect(outcome.health).not.toHaveProperty("breaks", expect.anything());
    }
  });

  it("shows a model failure without holding it against the sandbox", () => {
    expect(classifyTurnEnd(failed("model_error", "overloaded"))).toMatchObject({
      kind: "fail",
      error: { code: "model_error", message: "overloaded" },
      health: { kind: "failed", counts: false },
    });
  });

  it("breaks the sandbox when the error says its disk is full, whatever the code", () => {
    for (const message of ["ENOSPC: no space left on device", "write failed: EDQUOT"]) {
      expect(classifyTurnEnd(failed("model_error", message)).health).toMatchObject({
        kind: "failed",
        breaks: "its disk was full",
      });
    }
  });

  it("has a rule for every worker error code", () => {
    for (const code of TurnErrorCode.options)
      expect(["retry", "fail"]).toContain(classifyTurnEnd(failed(code)).kind);
  });

  it("fails a turn that ended without a code, leaving the sandbox's health alone", () => {
    expect(classifyTurnEnd(end("cancelled"))).toEqual({
      kind: "fail",
      error: { code: "cancelled", message: "the turn was cancelled" },
      health: undefined,
    });
    expect(classifyTurnEnd(end("error"))).toEqual({
      kind: "fail",
      error: { code: "error", message: "the turn failed" },
      health: undefined,
    });
  });
});
