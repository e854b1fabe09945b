import { spawnSync } from "node:child_process";
import { chmodSync, chownSync } from "node:fs";
import { resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { which } from "../../src/sandbox/commands.ts";
import { scratch } from "./helpers.ts";

/**
 * The process driver run by a non-root gateway: the real driver, started as
 * `nobody` (fixtures/unprivileged-run.ts), against real sandboxes.
 */
const canDrop = process.platform === "linux" && process.getuid?.() === 0 && !!which("setpriv");

describe.skipIf(!canDrop)("process driver without root", () => {
  const { dir, cleanup } = scratch("lobu-unpriv-");
  afterAll(cleanup);

  it("isolates sandboxes as nobody, with rlimit and polling fallbacks for limits", () => {
    chownSync(dir, 65534, 65534);
    chmodSync(dir, 0o755);
    const res = spawnSync(
      "setpriv",
      [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        process.execPath,
        resolve(import.meta.dirname, "fixtures/unprivileged-run.ts"),
        dir,
      ],
      {
        encoding: "utf8",
        env: { PATH: "/usr/bin:/bin", LOBU_LOG_LEVEL: "error" },
        cwd: "/",
        timeout: 120_000,
      },
    );
    expect(res.stderr).toBe("");
    // biome-ignore lint/suspicious/noExplicitAny: a JSON report checked field by field below
    const report = JSON.parse(res.stdout) as Record<string, any>;
    expect(report.error).toBeUndefined();
    expect(report.gatewayUid).toBe(65534);
    expect(report.probe.ok).toBe(true);
    expect(report.probe.details.join("\n")).toMatch(/not root/);
    // Distinct uids inside (both map to the gateway's uid outside).
    expect(report.whoA).not.toBe(0);
    expect(report.whoA).not.toBe(report.whoB);
    expect(report.procs.pids.length).toBeLessThan(5);
    expect(report.otherVolume.ok).toBe(false);
    expect(report.tcpHost.ok).toBe(false);
    expect(report.egress).toEqual({ ok: true, reply: "egress:una:hi" });
    expect(report.raw.code).not.toBe(0);
    expect(report.killGateway).toMatchObject({ ok: false, code: "ESRCH" });
    // RLIMIT_NPROC, applied inside the sandbox's user namespace, caps its processes.
    expect(report.spawnMany.failed).toBeGreaterThan(0);
    expect(report.spawnMany.started).toBeLessThan(32);
    expect(report.persisted).toMatchObject({ ok: true });
    // Without a cgroup the memory watchdog stops it.
    expect(report.oom).toMatchObject({ reason: "oom" });
    // exec needs nsenter --user-parent (util-linux ≥ 2.39) when not root.
    expect(report.exec.exitCode === 0 || /user-parent/.test(report.exec.error ?? "")).toBe(true);
  });
});
