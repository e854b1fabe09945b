import { statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxInstance } from "../../src/sandbox/driver.ts";
import { createProcessDriver, type ProcessDriver } from "../../src/sandbox/index.ts";
import { FIXTURE, makeSpec, probe, scratch, TestEgress, testLogger } from "./helpers.ts";

/**
 * The attacker fixture runs inside real `process` sandboxes and tries to get out.
 * Everything here is a real bwrap sandbox on this machine.
 */

const root = process.getuid?.() === 0;
const SECRET = "sk-gateway-secret-8c1f0e2a";
const hostIp = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && i.family === "IPv4" && !i.internal)?.address;

describe.skipIf(process.platform !== "linux")("process driver isolation", () => {
  const { dir, cleanup } = scratch();
  const egress = new TestEgress(dir);
  let driver: ProcessDriver;
  let a: SandboxInstance;
  let b: SandboxInstance;
  let server: Server;
  let port = 0;
  const ask = <T = Record<string, unknown>>(s: SandboxInstance, cmd: Record<string, unknown>) =>
    probe<T>(s, cmd);

  beforeAll(async () => {
    process.env.LOBU_TEST_PROVIDER_KEY = SECRET;
    driver = createProcessDriver({
      stateDir: join(dir, "state"),
      launcher: { entry: FIXTURE },
      logger: testLogger(),
      uidBase: 310_000,
    });
    server = createServer((c) => c.end("host listener")).listen(0, "0.0.0.0");
    await new Promise((r) => server.once("listening", r));
    port = (server.address() as { port: number }).port;
    a = await driver.start(makeSpec(dir, "iso-a", {}, { GREETING: "hello" }), egress);
    b = await driver.start(makeSpec(dir, "iso-b"), egress);
  });

  afterAll(async () => {
    await driver?.close();
    await egress.close();
    server?.close();
    delete process.env.LOBU_TEST_PROVIDER_KEY;
    cleanup();
  });

  it("runs as a non-root uid, a different one per sandbox", async () => {
    const whoA = await ask<{ uid: number; gid: number; groups: number[]; cwd: string }>(a, {
      op: "whoami",
    });
    const whoB = await ask<{ uid: number }>(b, { op: "whoami" });
    expect(whoA.uid).not.toBe(0);
    expect(whoA.gid).not.toBe(0);
    expect(whoA.groups).not.toContain(0);
    expect(whoA.uid).not.toBe(whoB.uid);
    expect(whoA.cwd).toBe("/workspace");
    const status = await ask<{ data: string }>(a, { op: "read", path: "/proc/self/status" });
    expect(status.data).toMatch(/CapEff:\s+0+\n/);
    expect(status.data).toMatch(/CapBnd:\s+0+\n/);
    expect(status.data).toMatch(/NoNewPrivs:\s+1/);
    if (root) {
      // Its files belong to its own host uid.
      await ask(a, { op: "write", path: "/workspace/owned", bytes: 10 });
      expect(statSync(join(dir, "volumes", "iso-a", "owned")).uid).toBe(whoA.uid);
    }
  });

  it("gets only the environment the driver sets: no gateway secrets anywhere in /proc", async () => {
    const who = await ask<{ env: Record<string, string> }>(a, { op: "whoami" });
    expect(who.env).toMatchObject({
      HOME: "/workspace",
      PI_OFFLINE: "1",
      LOBU_EGRESS_SOCKET: "/run/lobu/egress.sock",
      LOBU_VOLUME: "/workspace",
      LOBU_SANDBOX_ID: "iso-a",
      GREETING: "hello",
    });
    expect(Object.keys(who.env).sort()).toEqual(
      [
        "GREETING",
        "HOME",
        "LANG",
        "LOBU_EGRESS_SOCKET",
        "LOBU_SANDBOX_ID",
        "LOBU_VOLUME",
        "PATH",
        "PI_OFFLINE",
        "PWD",
      ].sort(),
    );
    const environs = await ask<Record<string, string>>(a, { op: "environAll" });
    expect(Object.keys(environs).length).toBeGreaterThan(0);
    expect(JSON.stringify(environs)).not.toContain(SECRET);
    expect(JSON.stringify(environs)).not.toContain("LOBU_TEST_PROVIDER_KEY");
    const gateway = await ask(a, { op: "read", path: `/proc/${process.pid}/environ` });
    expect(gateway).toMatchObject({ ok: false });
  });

  it("cannot read other volumes, the data dir, /root or the host", async () => {
    for (const path of [
      join(dir, "volumes", "iso-b"),
      join(dir, "volumes"),
      join(dir, "state"),
      dir,
      "/root",
      "/home",
      "/var/lib",
      "/run/lobu-sandbox",
      "/sys/fs/cgroup",
    ]) {
      expect(await ask(a, { op: "list", path }), path).toMatchObject({ ok: false });
    }
    const top = await ask<{ entries: string[] }>(a, { op: "list", path: "/" });
    for (const name of top.entries)
      expect([
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
        process.cwd().split("/")[1],
      ]).toContain(name);
    const etc = await ask<{ entries: string[] }>(a, { op: "list", path: "/etc" });
    for (const secretish of [
      "shadow",
      "gshadow",
      "npmrc",
      "gitconfig",
      "environment",
      "ssh",
      "sudoers",
    ])
      expect(etc.entries).not.toContain(secretish);
    const passwd = await ask<{ data: string }>(a, { op: "read", path: "/etc/passwd" });
    expect(passwd.data).toMatch(/^agent:x:\d+:\d+:/m);
    // What the sandbox can see of the repository (the worker's runtime) is read-only.
    const write = await ask(a, {
      op: "write",
      path: `${process.cwd()}/packages/worker/package.json`,
      bytes: 1,
    });
    expect(write).toMatchObject({ ok: false, code: "EROFS" });
    expect(await ask(a, { op: "write", path: "/usr/pwned", bytes: 1 })).toMatchObject({
      ok: false,
    });
  });

  it("holds no descriptors into the host beyond its own pipes", async () => {
    const fds = await ask<Record<string, string>>(a, { op: "fds" });
    // (The directory fd readdir used is gone by the time it is read: ENOENT.)
    for (const [fd, target] of Object.entries(fds)) {
      expect(target, `fd ${fd}`).toMatch(/^(socket:|pipe:|anon_inode:|\/dev\/null$|ERR ENOENT$)/);
    }
  });

  it("reaches the network only through its egress socket", async () => {
    const viaEgress = await ask(a, { op: "unix", path: "/run/lobu/egress.sock", text: "GET /" });
    expect(viaEgress).toEqual({ ok: true, reply: "egress:iso-a:GET /" });
    expect(egress.binds).toContainEqual({ kind: "sandbox", sandboxId: "iso-a" });

    const ifaces = await ask<{ stdout: string }>(a, { op: "interfaces" });
    const names = ifaces.stdout
      .split("\n")
      .slice(2)
      .map((l) => l.split(":")[0]!.trim())
      .filter(Boolean);
    expect(names).toEqual(["lo"]);

    expect(await ask(a, { op: "tcp", host: "127.0.0.1", port })).toMatchObject({ ok: false });
    if (hostIp) {
      expect(await ask(a, { op: "tcp", host: hostIp, port })).toMatchObject({ ok: false });
      expect(await ask(a, { op: "udp", host: hostIp, port: 53 })).toMatchObject({ ok: false });
    }
    expect(await ask(a, { op: "tcp", host: "1.1.1.1", port: 443 })).toMatchObject({ ok: false });
    expect(await ask(a, { op: "udp", host: "8.8.8.8", port: 53 })).toMatchObject({ ok: false });
    const raw = await ask<{ code: number; stderr: string }>(a, { op: "raw" });
    expect(raw.code).not.toBe(0);
    expect(raw.stderr).toMatch(/not permitted|PermissionError/i);
  });

  it.skipIf(process.arch !== "x64" && process.arch !== "arm64")(
    "is denied risky kernel interfaces by seccomp (io_uring, bpf, userfaultfd, keyrings)",
    async () => {
      const nr =
        process.arch === "x64"
          ? { io_uring_setup: 425, bpf: 321, userfaultfd: 323, keyctl: 250, perf_event_open: 298 }
          : { io_uring_setup: 425, bpf: 280, userfaultfd: 282, keyctl: 219, perf_event_open: 241 };
      for (const [name, number] of Object.entries(nr)) {
        const res = await ask<{ code: number; stdout: string }>(a, { op: "syscall", nr: number });
        expect(res.stdout, name).toMatch(/errno: Function not implemented/);
      }
      // An ordinary syscall still works (getpid: x64 39, arm64 172).
      const ok = await ask<{ stdout: string }>(a, {
        op: "syscall",
        nr: process.arch === "x64" ? 39 : 172,
      });
      expect(ok.stdout).toMatch(/^ok \d+/);
    },
  );

  it("sees only its own processes and cannot signal the gateway", async () => {
    const { pids } = await ask<{ pids: number[] }>(a, { op: "procs" });
    expect(pids.length).toBeLessThan(5);
    expect(Math.max(...pids)).toBeLessThan(50);
    expect(await ask(a, { op: "kill", pid: process.pid })).toMatchObject({
      ok: false,
      code: "ESRCH",
    });
    const unshare = await ask<{ code: number }>(a, { op: "sh", cmd: "unshare -U true" });
    expect(unshare.code).not.toBe(0);
  });

  it("lets an operator exec a command inside, as the sandbox's uid", async () => {
    const who = await ask<{ uid: number }>(a, { op: "whoami" });
    const chunks: string[] = [];
    const res = await driver.exec("iso-a", "id -u; pwd; ls /proc | grep -c '^[0-9]'", {
      onData: (c) => chunks.push(c),
    });
    expect(res.exitCode).toBe(0);
    const [uid, cwd] = res.output.trim().split("\n");
    expect(Number(uid)).toBe(who.uid);
    expect(cwd).toBe("/workspace");
    expect(chunks.join("")).toBe(res.output);
    await expect(driver.exec("nope", "true")).rejects.toThrow(/not running/);
  });

  it("keeps /workspace across stop and start, and reports usage", async () => {
    expect(await ask(a, { op: "write", path: "/workspace/notes.txt", bytes: 3000 })).toMatchObject({
      ok: true,
    });
    const usage = await a.usage();
    expect(usage.memoryBytes).toBeGreaterThan(0);
    expect(usage.pids).toBeGreaterThan(0);
    expect(usage.diskBytes).toBeGreaterThan(0);
    await driver.stop("iso-a");
    expect(await a.exited).toMatchObject({ reason: "stopped" });
    expect(driver.running()).not.toContain("iso-a");
    a = await driver.start(makeSpec(dir, "iso-a"), egress);
    const back = await ask<{ ok: boolean; data: string }>(a, {
      op: "read",
      path: "/workspace/notes.txt",
    });
    expect(back.ok).toBe(true);
    expect(back.data.length).toBe(3000);
  });

  it("picks up files the gateway drops into a stopped sandbox's volume", async () => {
    await driver.stop("iso-b");
    writeFileSync(join(dir, "volumes", "iso-b", "attachment.txt"), "from the gateway");
    b = await driver.start(makeSpec(dir, "iso-b"), egress);
    expect(await ask(b, { op: "read", path: "/workspace/attachment.txt" })).toMatchObject({
      ok: true,
      data: "from the gateway",
    });
    // ...and may change it: it belongs to the sandbox now.
    expect(
      await ask(b, { op: "write", path: "/workspace/attachment.txt", bytes: 5 }),
    ).toMatchObject({
      ok: true,
    });
  });

  it("reports a crash", async () => {
    const c = await driver.start(makeSpec(dir, "iso-c"), egress);
    await ask(c, { op: "exit", code: 3 });
    expect(await c.exited).toEqual({ code: 3, signal: null, reason: "crashed" });
    expect(driver.running()).not.toContain("iso-c");
  });
});
