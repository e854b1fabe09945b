import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createProcessDriver } from "../../src/sandbox/index.ts";
import { FIXTURE, probe, testLogger } from "./helpers.ts";
import { isolationAttacks } from "./isolation-attacks.ts";

/**
 * The shared isolation attack suite (isolation-attacks.ts) against real
 * `process` sandboxes (bwrap on this machine), plus what only they have: a
 * generated /etc/passwd, inherited descriptors, the seccomp filter.
 */

describe.skipIf(process.platform !== "linux")("process driver isolation", () => {
  const ctx = isolationAttacks({
    driver: async (dir) =>
      createProcessDriver({
        stateDir: join(dir, "state"),
        launcher: { entry: FIXTURE },
        logger: testLogger(),
        uidBase: 310_000,
      }),
    extraEnv: {},
    otherEnvKeys: ["PWD"],
    rootEntries: [
      "bin",
      "dev",
      "etc",
      "lib",
      "lib32",
      "lib64",
      "libx32",
      "nix",
      "proc",
      "run",
      "sbin",
      "tmp",
      "usr",
      "var",
      "workspace",
    ],
    hiddenPaths: ["/run/lobu-sandbox", "/sys/fs/cgroup"],
    etcSecrets: ["environment"],
    readOnlyCode: "EROFS",
    maxProcs: 4,
    userNamespaces: false,
  });

  it("names its uid `agent` in the /etc/passwd it sees", async () => {
    const passwd = await probe<{ data: string }>(ctx.a, { op: "read", path: "/etc/passwd" });
    expect(passwd.data).toMatch(/^agent:x:\d+:\d+:/m);
  });

  it("holds no descriptors into the host beyond its own pipes", async () => {
    const fds = await probe<Record<string, string>>(ctx.a, { op: "fds" });
    // (The directory fd readdir used is gone by the time it is read: ENOENT.)
    for (const [fd, target] of Object.entries(fds)) {
      expect(target, `fd ${fd}`).toMatch(/^(socket:|pipe:|anon_inode:|\/dev\/null$|ERR ENOENT$)/);
    }
  });

  it.skipIf(process.arch !== "x64" && process.arch !== "arm64")(
    "is denied risky kernel interfaces by seccomp (io_uring, bpf, userfaultfd, keyrings)",
    async () => {
      const nr =
        process.arch === "x64"
          ? { io_uring_setup: 425, bpf: 321, userfaultfd: 323, keyctl: 250, perf_event_open: 298 }
          : { io_uring_setup: 425, bpf: 280, userfaultfd: 282, keyctl: 219, perf_event_open: 241 };
      for (const [name, number] of Object.entries(nr)) {
        const res = await probe<{ code: number; stdout: string }>(ctx.a, {
          op: "syscall",
          nr: number,
        });
        expect(res.stdout, name).toMatch(/errno: Function not implemented/);
      }
      // An ordinary syscall still works (getpid: x64 39, arm64 172).
      const ok = await probe<{ stdout: string }>(ctx.a, {
        op: "syscall",
        nr: process.arch === "x64" ? 39 : 172,
      });
      expect(ok.stdout).toMatch(/^ok \d+/);
    },
  );
});
