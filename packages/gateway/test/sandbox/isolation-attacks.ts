import { statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { SandboxDriver, SandboxInstance } from "../../src/sandbox/driver.ts";
import { makeSpec, probe, scratch, TestEgress } from "./helpers.ts";

/**
 * The isolation attack suite every sandbox driver must pass: the attacker
 * fixture (fixtures/probe-worker.ts) runs in two real sandboxes of the driver
 * and tries to get out. process-isolation.test.ts and docker-isolation.test.ts
 * (per OCI runtime) run it; what only one driver has (seccomp numbers, the
 * Engine's leftovers, loop volumes) stays in those files.
 */

export type AttackedDriver = SandboxDriver &
  Required<Pick<SandboxDriver, "exec">> & { running(): string[] };

/** How a driver's sandboxes legitimately differ; everything else is asserted alike. */
export interface IsolationTarget {
  /** The driver under attack, made in beforeAll over the suite's scratch dir. */
  driver(dir: string): Promise<AttackedDriver>;
  /** Environment variables the worker sees besides the ones every driver sets. */
  extraEnv: Record<string, string>;
  /** Further variables, with values of their own (docker's HOSTNAME, the worker's token). */
  otherEnvKeys: string[];
  /** What `/` may hold (the image's or the host's top-level folders). */
  rootEntries: string[];
  /** Host paths, besides the data dir, /root, /home and /var/lib, the sandbox must not list. */
  hiddenPaths: string[];
  /** Files of /etc that must not be there, besides the shared secret-ish ones. */
  etcSecrets: string[];
  /** How writing into the read-only worker runtime fails (gVisor checks permissions first: EACCES). */
  readOnlyCode: string;
  /** At most this many processes visible in /proc (worker, its init, the probe's own). */
  maxProcs: number;
  /**
   * Whether it may make a user namespace. Only under gVisor: there namespaces are the
   * Sentry's own (the host kernel never sees them), and Docker's seccomp profile, which
   * forbids them under runc, is not applied (runsc's --oci-seccomp breaks thread creation).
   */
  userNamespaces: boolean;
  /** Checks that a stopped sandbox left nothing behind (the Engine's container). */
  afterStop?: (id: string) => void;
}

export interface IsolationContext {
  readonly dir: string;
  readonly egress: TestEgress;
  readonly driver: AttackedDriver;
  /** Sandbox iso-a (started with GREETING=hello) and iso-b; iso-a is restarted by the suite. */
  readonly a: SandboxInstance;
  readonly b: SandboxInstance;
}

export const SECRET = "sk-gateway-secret-8c1f0e2a";
const hostIp = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && i.family === "IPv4" && !i.internal)?.address;
const ask = <T = Record<string, unknown>>(s: SandboxInstance, cmd: Record<string, unknown>) =>
  probe<T>(s, cmd);
/** prctl(2)'s number: node cannot call it, perl (Debian essential) can. */
const PRCTL = process.arch === "arm64" ? 167 : 157;
const PR_GET_NO_NEW_PRIVS = 39;

/** Registers the shared attack cases (call inside a describe); driver-specific cases use the context. */
export function isolationAttacks(target: IsolationTarget): IsolationContext {
  const { dir, cleanup } = scratch();
  const egress = new TestEgress(dir);
  let driver: AttackedDriver;
  let a: SandboxInstance;
  let b: SandboxInstance;
  let server: Server;
  let port = 0;

  beforeAll(async () => {
    process.env.LOBU_TEST_PROVIDER_KEY = SECRET;
    driver = await target.driver(dir);
    server = createServer((c) => c.end("host listener")).listen(0, "0.0.0.0");
    await new Promise((r) => server.once("listening", r));
    port = (server.address() as { port: number }).port;
    a = await driver.start(makeSpec(dir, "iso-a", {}, { GREETING: "hello" }), egress);
    b = await driver.start(makeSpec(dir, "iso-b"), egress);
  }, 120_000);

  afterAll(async () => {
    await driver?.close();
    await egress.close();
    server?.close();
    delete process.env.LOBU_TEST_PROVIDER_KEY;
    cleanup();
  });

  it("runs as a non-root uid, a different one per sandbox, with no capabilities", async () => {
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
    // (gVisor's /proc/self/status has no NoNewPrivs line: ask the kernel.)
    const nnp = await ask<{ stdout: string }>(a, {
      op: "sh",
      cmd: `perl -e 'print syscall(${PRCTL}, ${PR_GET_NO_NEW_PRIVS}, 0, 0, 0, 0)'`,
    });
    expect(nnp.stdout).toBe("1");
    if (process.getuid?.() === 0) {
      // Its files belong to its own host uid.
      await ask(a, { op: "write", path: "/workspace/owned", bytes: 10 });
      expect(statSync(join(dir, "volumes", "iso-a", "owned")).uid).toBe(whoA.uid);
    }
  });

  it("gets only the environment the driver sets: no gateway secrets anywhere in /proc", async () => {
    const who = await ask<{ env: Record<string, string> }>(a, { op: "whoami" });
    const expected = {
      HOME: "/workspace",
      PI_OFFLINE: "1",
      LOBU_EGRESS_SOCKET: "/run/lobu/egress.sock",
      LOBU_VOLUME: "/workspace",
      LOBU_SANDBOX_ID: "iso-a",
      GREETING: "hello",
      ...target.extraEnv,
    };
    expect(who.env).toMatchObject(expected);
    expect(Object.keys(who.env).sort()).toEqual(
      [...Object.keys(expected), "LANG", "PATH", ...target.otherEnvKeys].sort(),
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
      ...target.hiddenPaths,
    ]) {
      expect(await ask(a, { op: "list", path }), path).toMatchObject({ ok: false });
    }
    const top = await ask<{ entries: string[] }>(a, { op: "list", path: "/" });
    for (const name of top.entries)
      expect([...target.rootEntries, process.cwd().split("/")[1]]).toContain(name);
    const etc = await ask<{ entries: string[] }>(a, { op: "list", path: "/etc" });
    for (const secretish of [
      "shadow",
      "gshadow",
      "npmrc",
      "gitconfig",
      "ssh",
      "sudoers",
      ...target.etcSecrets,
    ])
      expect(etc.entries).not.toContain(secretish);
    // What the sandbox can see of the repository (the worker's runtime) is read-only.
    const write = await ask(a, {
      op: "write",
      path: `${process.cwd()}/packages/worker/package.json`,
      bytes: 1,
    });
    expect(write).toMatchObject({ ok: false, code: target.readOnlyCode });
    for (const path of ["/usr/pwned", "/etc/passwd"])
      expect(await ask(a, { op: "write", path, bytes: 1 }), path).toMatchObject({ ok: false });
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
    expect(names.filter((n) => n !== "lo")).toEqual([]);

    expect(await ask(a, { op: "tcp", host: "127.0.0.1", port })).toMatchObject({ ok: false });
    if (hostIp) {
      expect(await ask(a, { op: "tcp", host: hostIp, port })).toMatchObject({ ok: false });
      expect(await ask(a, { op: "udp", host: hostIp, port: 53 })).toMatchObject({ ok: false });
    }
    // Docker's default bridge gateway, where a container on a network would find the host.
    expect(await ask(a, { op: "tcp", host: "172.17.0.1", port })).toMatchObject({ ok: false });
    expect(await ask(a, { op: "tcp", host: "1.1.1.1", port: 443 })).toMatchObject({ ok: false });
    expect(await ask(a, { op: "udp", host: "8.8.8.8", port: 53 })).toMatchObject({ ok: false });
    const raw = await ask<{ code: number; stderr: string }>(a, { op: "raw" });
    expect(raw.code).not.toBe(0);
    expect(raw.stderr).toMatch(/not permitted|PermissionError/i);
  });

  it("sees only its own processes and cannot signal the gateway", async () => {
    const { pids } = await ask<{ pids: number[] }>(a, { op: "procs" });
    expect(pids.length).toBeLessThanOrEqual(target.maxProcs);
    expect(Math.max(...pids)).toBeLessThan(50);
    expect(await ask(a, { op: "kill", pid: process.pid })).toMatchObject({
      ok: false,
      code: "ESRCH",
    });
    const unshare = await ask<{ code: number }>(a, { op: "sh", cmd: "unshare -U true" });
    expect(unshare.code === 0).toBe(target.userNamespaces);
  });

  it("lets an operator exec a command inside, as the sandbox's uid", async () => {
    const who = await ask<{ uid: number }>(a, { op: "whoami" });
    const chunks: string[] = [];
    const res = await driver.exec("iso-a", "id -u; pwd", { onData: (c) => chunks.push(c) });
    expect(res.exitCode).toBe(0);
    const [uid, cwd] = res.output.trim().split("\n");
    expect(Number(uid)).toBe(who.uid);
    expect(cwd).toBe("/workspace");
    expect(chunks.join("")).toBe(res.output);
    await expect(driver.exec("nope", "true")).rejects.toThrow(/not running/);
  });

  it("scales to zero: stop ends it, start wakes it on the same volume, and reports usage", async () => {
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
    target.afterStop?.("iso-a");
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
    ).toMatchObject({ ok: true });
  });

  it("reports a crash", async () => {
    const c = await driver.start(makeSpec(dir, "iso-c"), egress);
    await ask(c, { op: "exit", code: 3 });
    expect(await c.exited).toEqual({ code: 3, signal: null, reason: "crashed" });
    expect(driver.running()).not.toContain("iso-c");
  });

  return {
    dir,
    egress,
    get driver() {
      return driver;
    },
    get a() {
      return a;
    },
    get b() {
      return b;
    },
  };
}
