import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { isAlive, signalSame, startTicks } from "../../src/sandbox/proc.ts";

/**
 * A remembered pid is signalled only while it still names the same process:
 * after that process exits, the number may be given to any other (pid_max is
 * often 32768), and a blind SIGKILL would hit it.
 */
describe.skipIf(process.platform !== "linux")("signalling remembered pids", () => {
  it("signals a process only while its start time still matches", async () => {
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    const exited = new Promise((r) => child.once("exit", r));
    const pid = child.pid!;
    const ticks = startTicks(pid);
    expect(ticks).toBeGreaterThan(0);
    // Another process that got this pid would have another start time.
    expect(signalSame(pid, ticks! + 1, "SIGKILL")).toBe(false);
    expect(signalSame(pid, undefined, "SIGKILL")).toBe(false);
    expect(isAlive(pid)).toBe(true);
    expect(signalSame(pid, ticks, "SIGKILL")).toBe(true);
    await exited;
    expect(signalSame(pid, ticks, "SIGKILL")).toBe(false);
  });
});
