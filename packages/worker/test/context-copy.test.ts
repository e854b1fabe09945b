import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type MockLlm, startMockLlm } from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir, workspace } from "./virtual/helpers.ts";
import { type VirtualPi, virtualPi } from "./virtual/pi-kit.ts";

let llm: MockLlm;
let pi: VirtualPi;
let runtimeDir: string;

beforeAll(async () => {
  llm = await startMockLlm();
  runtimeDir = await mkdtemp(join(tmpdir(), "lobu-pi-copy-"));
  pi = await virtualPi(runtimeDir, llm.url);
});
afterAll(async () => {
  await llm.close();
  await rm(runtimeDir, { recursive: true, force: true });
});

/** Three prompts with tool calls and replies; every request body the model got. */
async function conversation(piCopy: boolean): Promise<unknown[]> {
  llm.reset();
  const session = await pi.session(await workspace(), await tempDir("lobu-agent-"), { piCopy });
  for (let i = 0; i < 3; i++) {
    llm.script(
      { toolCalls: [{ name: "bash", input: { command: `echo ${i} >> n.txt && cat n.txt` } }] },
      { text: `reply ${i}` },
    );
    await session.prompt(`prompt ${i}`);
  }
  session.dispose();
  // Timestamps and ids differ between two runs; the conversation must not.
  return llm.requests.map((r) =>
    JSON.parse(JSON.stringify(r.body).replace(/toolu_[A-Za-z0-9_-]+/g, "toolu_x")),
  );
}

describe("skipping pi's per-call copy of the conversation", () => {
  it("sends the model exactly what pi's copy would, turn after turn", async () => {
    const copied = await conversation(true);
    const skipped = await conversation(false);
    expect(copied).toHaveLength(6);
    expect(skipped).toEqual(copied);
    // The last request carries the whole conversation: nothing was dropped or edited.
    const last = skipped.at(-1) as { messages: unknown[] };
    expect(last.messages.length).toBeGreaterThanOrEqual(11);
  });

  it("hands the messages over as they are while no extension listens, and copies when one does", async () => {
    const session = await pi.session(await workspace(), await tempDir("lobu-agent-"));
    const runner = session.extensionRunner;
    const messages: Parameters<typeof runner.emitContext>[0] = [
      { role: "user", content: "hi", timestamp: 1 },
    ];
    expect(await runner.emitContext(messages)).toBe(messages);
    // A `context` handler may edit what it gets: it works on pi's copy.
    runner.hasHandlers = (event) => event === "context";
    const copy = await runner.emitContext(messages);
    expect(copy).not.toBe(messages);
    expect(copy).toEqual(messages);
    session.dispose();
  });
});
