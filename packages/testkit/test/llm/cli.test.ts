import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { type AddressInfo, createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";

/** `lobu-mock-llm`, run the way the README runs it: a standalone process. */

const NODE = fileURLToPath(new URL("../../../../node_modules/.bin/node", import.meta.url));
const CLI = fileURLToPath(new URL("../../src/llm/cli.ts", import.meta.url));

let child: ChildProcess | undefined;
afterEach(() => {
  child?.kill("SIGKILL");
  child = undefined;
});

/** Start the CLI and resolve with its origin and a reader of everything it printed. */
async function startCli(args: string[]): Promise<{ url: string; output: () => string }> {
  const proc = spawn(NODE, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  child = proc;
  let out = "";
  const url = await new Promise<string>((resolve, reject) => {
    proc.on("exit", (code) => reject(new Error(`lobu-mock-llm exited (${code}):\n${out}`)));
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /Mock LLM listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    };
    proc.stdout.on("data", onData);
    proc.stderr.on("data", onData);
  });
  return { url, output: () => out };
}

describe("lobu-mock-llm", () => {
  it("serves echo replies, enforces --api-key, logs requests and stops on SIGTERM", async () => {
    const { url, output } = await startCli(["--port", "0", "--api-key", "k"]);
    expect(output()).toContain("API key:            required (--api-key)");
    const ask = (key: string) =>
      fetch(`${url}/v1/messages`, {
        method: "POST",
        headers: { "x-api-key": key, "anthropic-version": "2023-06-01" },
        body: JSON.stringify({
          model: "m",
          max_tokens: 10,
          messages: [{ role: "user", content: "hello cli" }],
        }),
      });
    const ok = await ask("k");
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ content: [{ type: "text", text: "echo: hello cli" }] });
    expect((await ask("wrong")).status).toBe(401);
    await vi.waitFor(() =>
      expect(output()).toContain('anthropic POST /v1/messages model=m "hello cli"'),
    );

    const exited = new Promise<number | null>((resolve) => child!.once("exit", resolve));
    child!.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it("says in one line that a busy port is busy and how to pick another, without a stack trace", async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", () => r()));
    const port = (busy.address() as AddressInfo).port;
    try {
      const r = spawnSync(NODE, [CLI, "--port", String(port)], { encoding: "utf8" });
      expect(r.status).toBe(1);
      expect(r.stderr.trim()).toBe(
        `lobu-mock-llm: port ${port} on 127.0.0.1 is already in use; choose another with --port (e.g. --port ${port + 1}), or --port 0 for any free one.`,
      );
    } finally {
      busy.close();
    }
  });

  it("rejects a bad --port and unknown flags with exit code 2 and the usage", () => {
    const badPort = spawnSync(NODE, [CLI, "--port", "http"], { encoding: "utf8" });
    expect(badPort.status).toBe(2);
    expect(badPort.stderr).toContain('--port must be a number between 0 and 65535, got "http"');

    const unknown = spawnSync(NODE, [CLI, "--verbose"], { encoding: "utf8" });
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/Unknown option '--verbose'[\s\S]*Usage: lobu-mock-llm/);
  });
});
