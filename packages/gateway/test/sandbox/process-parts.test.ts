import { describe, expect, it } from "vitest";
import type { Setup } from "../../src/sandbox/process/detect.ts";
import { type ExecTarget, execArgv } from "../../src/sandbox/process/exec.ts";
import { rlimitArgs } from "../../src/sandbox/process/launch.ts";
import { exitInfo } from "../../src/sandbox/process/supervise.ts";

/** Pure parts of the process driver: how an exit is read, how exec and rlimits are spelled. */

const setup = (over: Partial<Setup> = {}): Setup => ({
  bwrap: "/usr/bin/bwrap",
  shell: "/bin/bash",
  setpriv: "/usr/bin/setpriv",
  prlimit: "/usr/bin/prlimit",
  nsenter: "/usr/bin/nsenter",
  nsenterUserParent: true,
  root: true,
  disableUserns: true,
  tmpSize: true,
  cgroupDetails: [],
  quota: "watch",
  quotaDetail: "",
  ...over,
});

const target: ExecTarget = {
  sandboxId: "sb-1",
  initPid: 4321,
  uid: 200_001,
  gid: 200_001,
  procsFiles: [],
  rlimits: [],
  nodeDir: "/opt/node/bin",
};

describe("exitInfo", () => {
  it("reads bwrap's 128+N exit code as the signal", () => {
    expect(exitInfo({ code: 137, signal: null }, { oom: false })).toEqual({
      code: null,
      signal: "SIGKILL",
      reason: "crashed",
    });
  });

  it("tells stops, crashes and OOM kills apart", () => {
    expect(exitInfo({ code: 0, signal: null }, { oom: false }).reason).toBe("stopped");
    expect(exitInfo({ code: 1, signal: null }, { oom: false }).reason).toBe("crashed");
    expect(exitInfo({ code: 137, signal: null }, { oom: true }).reason).toBe("oom");
    // A clean exit is not an OOM kill, even when something in the cgroup was killed.
    expect(exitInfo({ code: 0, signal: null }, { oom: true }).reason).toBe("stopped");
  });

  it("keeps the gateway's own reason when it ended the sandbox", () => {
    const info = exitInfo(
      { code: null, signal: "SIGKILL" },
      { oom: true, stopReason: "disk_full" },
    );
    expect(info).toEqual({ code: null, signal: "SIGKILL", reason: "disk_full" });
  });
});

describe("execArgv", () => {
  it("enters as root and becomes the sandbox's uid", () => {
    const argv = execArgv(setup(), target, ["ls", "-l"]);
    expect(argv.slice(0, 4)).toEqual([
      "/usr/bin/setpriv",
      "--clear-groups",
      "--",
      "/usr/bin/nsenter",
    ]);
    expect(argv).toContain("--target=4321");
    expect(argv).toContain("--setuid=200001");
    expect(argv.slice(-4)).toEqual([`cd /workspace || exit 1; exec "$@"`, "lobu-exec", "ls", "-l"]);
  });

  it("passes a non-root gateway through the parent user namespace", () => {
    const argv = execArgv(setup({ root: false }), target, "echo hi");
    expect(argv[0]).toBe("/usr/bin/nsenter");
    expect(argv).toContain("--user-parent");
    expect(argv).toContain("--preserve-credentials");
    expect(argv.slice(-3)).toEqual([`cd /workspace || exit 1; eval "$1"`, "lobu-exec", "echo hi"]);
  });

  it("refuses with what to install when nsenter cannot do it", () => {
    expect(() => execArgv(setup({ nsenter: undefined }), target, "true")).toThrow(/util-linux/);
    expect(() =>
      execArgv(setup({ root: false, nsenterUserParent: false }), target, "true"),
    ).toThrow(/--user-parent/);
  });
});

describe("rlimitArgs", () => {
  const limits = { memoryMb: 256, cpus: 1, pids: 64, diskMb: 16 };

  it("caps files, file size and processes", () => {
    expect(rlimitArgs(setup(), limits)).toEqual([
      "/usr/bin/prlimit",
      "--nofile=4096:4096",
      "--core=0:0",
      `--fsize=${16 * 1024 * 1024}:${16 * 1024 * 1024}`,
      "--nproc=64:64",
      "--",
    ]);
  });

  it("is empty without prlimit", () => {
    expect(rlimitArgs(setup({ prlimit: undefined }), limits)).toEqual([]);
  });
});
