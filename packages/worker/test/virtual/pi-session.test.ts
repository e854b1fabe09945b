import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type MockLlm, startMockLlm } from "@lobu/testkit";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { VIRTUAL_TOOL_NAMES, type VirtualWorkspace } from "../../src/virtual/index.ts";
import { tempDir, workspace } from "./helpers.ts";
import { type VirtualPi, virtualPi } from "./pi-kit.ts";

let llm: MockLlm;
let pi: VirtualPi;
let runtimeDir: string;

beforeAll(async () => {
  llm = await startMockLlm();
  // Lives for the whole file, so not a per-test tempDir().
  runtimeDir = await mkdtemp(join(tmpdir(), "lobu-pi-"));
  pi = await virtualPi(runtimeDir, llm.url);
});
afterAll(async () => {
  await llm.close();
  await rm(runtimeDir, { recursive: true, force: true });
});
beforeEach(() => llm.reset());

const sessionOn = async (ws: VirtualWorkspace) => pi.session(ws, await tempDir("lobu-agent-"));

describe("a pi session on the virtual tier", () => {
  it("runs the model's bash call in the workspace and returns the result to the model", async () => {
    const ws = await workspace();
    const session = await sessionOn(ws);
    llm.script(
      { toolCalls: [{ name: "bash", input: { command: "echo hi > a.txt && cat a.txt" } }] },
      { toolCalls: [{ name: "bash", input: { command: 'echo "$PI_SESSION_ID|$HOME"' } }] },
      { text: "All done." },
    );
    await session.prompt("make a file");

    const [first, second] = llm.requests;
    expect(llm.requests).toHaveLength(3);
    const tools = (first!.body.tools as Array<{ name: string }>).map((t) => t.name).sort();
    expect(tools).toEqual([...VIRTUAL_TOOL_NAMES].sort());
    expect(JSON.stringify(first!.body.system)).toContain("/workspace");
    expect(JSON.stringify(first!.body.system)).not.toContain(ws.volumeDir);
    expect(second!.toolResults).toEqual([
      expect.objectContaining({ content: "hi\n", isError: false }),
    ]);
    expect(llm.requests[2]!.toolResults[0]!.content).toBe(`${session.sessionId}|/workspace\n`);
    expect(readFileSync(join(ws.volumeDir, "a.txt"), "utf8")).toBe("hi\n");
    expect(existsSync(join(process.cwd(), "a.txt"))).toBe(false);
    session.dispose();
  });

  it("sends failures back as tool errors: confinement, exit codes, quota", async () => {
    const ws = await workspace({ limits: { maxTotalBytes: 1_000 } });
    const session = await sessionOn(ws);
    llm.script(
      {
        toolCalls: [
          { name: "read", input: { path: "../../etc/passwd" } },
          { name: "bash", input: { command: "exit 4" } },
          { name: "write", input: { path: "big.txt", content: "x".repeat(2_000) } },
          { name: "grep", input: { pattern: "anything", path: "/etc" } },
        ],
      },
      { text: "ok" },
    );
    await session.prompt("try things");
    const results = llm.requests[1]!.toolResults;
    expect(results.map((r) => r.isError)).toEqual([true, true, true, true]);
    expect(results[0]!.content).toContain("outside the workspace");
    expect(results[1]!.content).toContain("Command exited with code 4");
    expect(results[2]!.content).toContain("disk quota exceeded");
    expect(results[3]!.content).toContain("outside the workspace");
    session.dispose();
  });
});
