import { PassThrough } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { WorkerLauncher } from "../../src/sandbox/launcher.ts";
import { OutputCapture } from "../../src/sandbox/output.ts";
import { isAlive } from "../../src/sandbox/proc.ts";
import { eventually, FIXTURE, probe, testLogger } from "./helpers.ts";

const launcher = new WorkerLauncher({ entry: FIXTURE, readyTimeoutMs: 3000, logger: testLogger() });
const started: Array<() => void> = [];
afterAll(() => {
  for (const kill of started) kill();
});

function launch(env: Record<string, string> = {}) {
  const [command, ...args] = launcher.workerArgv();
  return launcher.launch({
    sandboxId: "launcher-test",
    command: command!,
    args,
    env: { PATH: "/usr/bin:/bin", ...env },
  });
}

describe("WorkerLauncher", () => {
  it("starts a worker, waits for ready and talks NDJSON over fd 3", async () => {
    const w = await launch();
    started.push(() => w.child.kill("SIGKILL"));
    expect(w.ready).toMatchObject({ t: "ready", protocol: 1, mode: "single" });
    const instance = {
      id: "launcher-test",
      connection: w.connection,
      exited: w.exited.then(() => ({ code: 0, signal: null, reason: "stopped" })),
    };
    const who = await probe<{ env: Record<string, string> }>(instance as never, { op: "whoami" });
    expect(who.env.PATH).toBe("/usr/bin:/bin");

    // Invalid lines (not JSON, wrong shape, unknown type) are dropped; the channel keeps working.
    await probe(instance as never, { op: "garbage" });
    expect(w.connection.invalidCount).toBe(3);
    expect(await probe(instance as never, { op: "procs" })).toHaveProperty("pids");

    w.connection.send({ t: "shutdown" });
    expect((await w.exited).code).toBe(0);
  });

  it("kills a worker that never says ready and reports its output", async () => {
    const err = await launch({ PROBE_NO_READY: "1" }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/did not become ready within 3 s/);
    expect((err as Error).message).toContain("probe-worker: staying silent as asked");
    const pid = (err as { details?: { pid?: number } }).details?.pid;
    expect(pid).toBeGreaterThan(0);
    await eventually(async () => (isAlive(pid!) ? undefined : true));
  });

  it("rejects with the exit status and stderr tail when the worker dies first", async () => {
    const err = (await launch({ PROBE_EXIT_BEFORE_READY: "3" }).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/exited before it was ready \(exit code 3\)/);
    expect(err.message).toContain("probe-worker: exiting before ready as asked");
  });

  it("refuses a worker speaking another protocol version", async () => {
    const err = (await launch({ PROBE_PROTOCOL: "2" }).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/speaks protocol 2 but this gateway speaks 1/);
  });
});

describe("OutputCapture", () => {
  it("rate limits logged lines, truncates long ones and keeps a tail", async () => {
    const logged: string[] = [];
    const logger = testLogger();
    const capture = new OutputCapture({
      logger: Object.assign(Object.create(logger), {
        info: (_: unknown, msg: string) => logged.push(msg),
        warn: () => {},
      }),
      bindings: {},
      burstLines: 10,
      linesPerSecond: 0.001,
      maxLineLength: 100,
      tailLines: 5,
    });
    const stream = new PassThrough();
    capture.attach(stream, "stderr");
    for (let i = 0; i < 100; i++) stream.write(`line ${i}\n`);
    stream.write(`${"x".repeat(500)}\n`);
    stream.end();
    await new Promise((r) => setImmediate(r));
    expect(logged).toHaveLength(10);
    const tail = capture.tail();
    expect(tail).toHaveLength(5);
    expect(tail[3]).toBe("[stderr] line 99");
    expect(tail[4]!.length).toBeLessThan(150);
  });
});
