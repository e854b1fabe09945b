import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type AgentEvent, inputDigest, type TurnContext, type WorkerToGateway } from "@lobu/core";
import type { MockLlm } from "@lobu/testkit";
import { beforeEach, describe, expect, it } from "vitest";
import { SessionHost } from "../src/host.ts";
import { virtualWorkspace } from "../src/virtual-workspace.ts";
import { agentFixtures, turnContext } from "./agent-fixtures.ts";
import { tempDir } from "./virtual/helpers.ts";

/**
 * The worker runs an approved call only if its input is the one the person
 * was shown: the answer carries the digest of the shown input (the gateway
 * adds it from the stored request), and a call whose params differ, or an
 * answer without it, is refused. A guard for the user (the sandbox is the
 * boundary); the real worker code, the mock LLM over HTTP, this test in the
 * gateway's seat on the control channel.
 */

const fixtures = agentFixtures();
const shells = fixtures.shells;
let llm: MockLlm;
beforeEach(() => {
  llm = fixtures.llm;
});

const context: TurnContext = turnContext({ tools: ["bash"], toolPolicy: { bash: "ask" } }, "/gate");

/**
 * One turn whose bash call asks; `decide` answers the approval request the
 * worker emitted. Returns the turn's end and what the model got back.
 */
async function approvalTurn(
  text: string,
  command: string,
  decide: (event: Extract<AgentEvent, { type: "approval_request" }>) => Record<string, unknown>,
) {
  const root = await tempDir("lobu-gate-");
  mkdirSync(join(root, "sb_gate"), { recursive: true });
  llm.when(
    (r) => r.lastUserText === text,
    { toolCalls: [{ name: "bash", input: { command } }] },
    (r) => ({ text: r.toolResults[0]?.isError ? "refused" : "ran" }),
  );
  let resolveEnd!: (m: Extract<WorkerToGateway, { t: "turn_end" }>) => void;
  const ended = new Promise<Extract<WorkerToGateway, { t: "turn_end" }>>((r) => {
    resolveEnd = r;
  });
  const host: SessionHost = new SessionHost({
    mode: "pool",
    volumeOf: (id) => join(root, id),
    workspaceFor: (_id, volumeDir) => virtualWorkspace({ volumeDir, shellPool: shells }),
    gatewayUrl: llm.url,
    baseEnv: {},
    send: (msg) => {
      if (msg.t === "turn_end") resolveEnd(msg);
      if (msg.t === "event" && msg.event.type === "approval_request") {
        const event = msg.event;
        // The worker sends what will run, nothing it wrote about it.
        expect(event.summary).toBeUndefined();
        queueMicrotask(() =>
          host.handle({
            t: "answer",
            sandboxId: "sb_gate",
            requestId: event.requestId,
            answer: decide(event),
          }),
        );
      }
    },
  });
  host.handle({
    t: "turn",
    sandboxId: "sb_gate",
    turnId: "t1",
    messageId: `m-${text}`,
    text,
    context,
  });
  const end = await ended;
  host.shutdown();
  const result = llm.requests.filter((r) => r.lastUserText === text).at(-1)?.toolResults[0];
  return { end, result, root };
}

describe("worker approval gate", () => {
  it("runs the call when the answer carries the digest of its input", async () => {
    const { end, root } = await approvalTurn("gate ok", "echo ok > ran.txt", (e) => ({
      choice: "approve",
      inputDigest: inputDigest(e.input),
    }));
    expect(end).toMatchObject({ status: "done", text: "ran" });
    expect(readFileSync(join(root, "sb_gate", "ran.txt"), "utf8")).toBe("ok\n");
  });

  it("refuses when the approval was for another input", async () => {
    const { end, result } = await approvalTurn("gate other", "echo no > ran.txt", () => ({
      choice: "approve",
      inputDigest: inputDigest({ command: "echo something else" }),
    }));
    expect(end).toMatchObject({ status: "done", text: "refused" });
    expect(result?.content).toContain("The approval was for a different bash input");
  });

  it("refuses an approval without a digest", async () => {
    const { end, result } = await approvalTurn("gate none", "echo no > ran.txt", () => ({
      choice: "always",
    }));
    expect(end).toMatchObject({ status: "done", text: "refused" });
    expect(result?.content).toContain("The approval was for a different bash input");
  });
});
