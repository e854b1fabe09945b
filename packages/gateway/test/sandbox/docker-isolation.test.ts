import { spawnSync } from "node:child_process";
import { statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { digest } from "@lobu/core";
import { dockerAvailable, ensureHostSandboxImage } from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDockerDriver, type DockerDriver } from "../../src/sandbox/docker-driver.ts";
import type { SandboxInstance } from "../../src/sandbox/driver.ts";
import { FIXTURE, makeSpec, probe, scratch, TestEgress, testLogger } from "./helpers.ts";

/**
 * The attacker fixture of process-isolation.test.ts, run in real containers
 * made by the `docker` driver through a real Docker Engine, with each OCI
 * runtime registered there (runc always; runsc, gVisor, when scripts/setup.sh
 * registered it). The image is assembled from this host's Debian packages
 * (testkit's ensureHostSandboxImage) since no registry is reachable.
 */

const engine = process.platform === "linux" ? dockerAvailable() : { ok: false, why: "not Linux" };
if (!engine.ok)
  console.warn(`docker driver isolation suite skipped: ${engine.why} (start dockerd)`);
const registered = engine.ok
  ? spawnSync("docker", ["info", "--format", "{{json .Runtimes}}"], { encoding: "utf8" }).stdout
  : "";
const runtimes = ["runc", "runsc"].filter((r) => registered.includes(`"${r}"`));
const SECRET = "sk-gateway-secret-8c1f0e2a";
const hostIp = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && i.family === "IPv4" && !i.internal)?.address;

const image = engine.ok ? ensureHostSandboxImage() : "";

/**
 * Why `runtime` cannot run the worker here, if it cannot: it must list a host
 * directory mounted read-only (Debian bookworm's runsc of 2022 answers EINVAL
 * for directories of some host filesystems, so Node cannot load modules).
 */
function unusable(runtime: string): string | undefined {
  if (!engine.ok) return engine.why;
  const cwd = process.cwd();
  const name = `lobu-canary-${process.pid}-${runtime}`;
  const res = spawnSync(
    "docker",
    [
      "run",
      "--rm",
      "--name",
      name,
      "--runtime",
      runtime,
      "--network",
      "none",
      "-v",
      `${cwd}:${cwd}:ro`,
      image,
      "ls",
      cwd,
    ],
    { encoding: "utf8", timeout: 30_000 },
  );
  spawnSync("docker", ["rm", "-f", name], { stdio: "ignore", timeout: 30_000 });
  if (res.status === 0) return undefined;
  const said = (res.stderr || res.error?.message || "no answer within 30 s").trim();
  return `the ${runtime} runtime cannot list a bind-mounted host directory here: ${said.slice(0, 300)}`;
}

for (const runtime of runtimes.length > 0 ? runtimes : ["runc"]) {
  const why = unusable(runtime);
  if (why) console.warn(`docker driver isolation suite (${runtime}) skipped: ${why}`);
  describe.skipIf(why !== undefined)(`docker driver isolation (${runtime})`, () => suite(runtime));
}

function suite(runtime: string): void {
  const { dir, cleanup } = scratch();
  const egress = new TestEgress(dir);
  let driver: DockerDriver;
  let a: SandboxInstance;
  let b: SandboxInstance;
  let server: Server;
  let port = 0;
  let ghost = "";
  const ask = <T = Record<string, unknown>>(s: SandboxInstance, cmd: Record<string, unknown>) =>
    probe<T>(s, cmd);

  beforeAll(async () => {
    process.env.LOBU_TEST_PROVIDER_KEY = SECRET;
    driver = createDockerDriver({
      stateDir: join(dir, "state"),
      image,
      runtime,
      launcher: { entry: FIXTURE },
      logger: testLogger(),
      uidBase: 410_000,
    });
    // What a gateway that died would leave: a stopped container of this data dir.
    ghost = `lobu-ghost-${process.pid}-${runtime}`;
    const made = spawnSync("docker", [
      "create",
      "--name",
      ghost,
      "--label",
      `lobu.owner=${digest(join(dir, "state"), 12)}`,
      "--label",
      "lobu.sandbox=ghost",
      image,
      "true",
    ]);
    expect(made.status, made.stderr.toString()).toBe(0);
    const probed = await driver.probe();
    expect(probed, probed.details.join("; ")).toMatchObject({ ok: true, isolated: true });
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

  it("removed the containers an earlier run of this data dir left", () => {
    const found = spawnSync("docker", ["ps", "-a", "-q", "--filter", `name=${ghost}`], {
      encoding: "utf8",
    });
    expect(found.stdout.trim()).toBe("");
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
    expect(status.data).toMatch(/NoNewPrivs:\s+1/);
    if (process.getuid?.() === 0) {
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
      LOBU_CONTROL: "/run/lobu/control.sock",
      LOBU_VOLUME: "/workspace",
      LOBU_SANDBOX_ID: "iso-a",
      GREETING: "hello",
    });
    for (const key of Object.keys(who.env))
      expect(key).toMatch(/^(GREETING|HOME|HOSTNAME|LANG|LOBU_[A-Z_]+|PATH|PI_OFFLINE|PWD)$/);
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
      "/var/run/docker.sock",
    ]) {
      const res = await ask(a, { op: "list", path });
      expect(res, path).toMatchObject({ ok: false });
    }
    const top = await ask<{ entries: string[] }>(a, { op: "list", path: "/" });
    for (const name of top.entries)
      expect([
        "bin",
        "dev",
        "etc",
        "lib",
        "lib64",
        "proc",
        "run",
        "sbin",
        "skills",
        "sys",
        "tmp",
        "usr",
        "workspace",
        ".dockerenv",
        process.cwd().split("/")[1],
      ]).toContain(name);
    const etc = await ask<{ entries: string[] }>(a, { op: "list", path: "/etc" });
    for (const secretish of ["shadow", "gshadow", "npmrc", "gitconfig", "ssh", "sudoers"])
      expect(etc.entries).not.toContain(secretish);
    // The worker's runtime is read-only, and so is the whole root.
    const write = await ask(a, {
      op: "write",
      path: `${process.cwd()}/packages/worker/package.json`,
      bytes: 1,
    });
    expect(write).toMatchObject({ ok: false, code: "EROFS" });
    expect(await ask(a, { op: "write", path: "/usr/pwned", bytes: 1 })).toMatchObject({
      ok: false,
    });
    expect(await ask(a, { op: "write", path: "/etc/passwd", bytes: 1 })).toMatchObject({
      ok: false,
    });
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
    expect(await ask(a, { op: "tcp", host: "172.17.0.1", port })).toMatchObject({ ok: false });
    expect(await ask(a, { op: "tcp", host: "1.1.1.1", port: 443 })).toMatchObject({ ok: false });
    expect(await ask(a, { op: "udp", host: "8.8.8.8", port: 53 })).toMatchObject({ ok: false });
    const raw = await ask<{ code: number; stderr: string }>(a, { op: "raw" });
    expect(raw.code).not.toBe(0);
    expect(raw.stderr).toMatch(/not permitted|PermissionError/i);
  });

  it("cannot open another sandbox's control channel or egress through the control socket", async () => {
    // The control socket is shared by every container; without a token it answers nothing.
    const bare = await ask<{ ok: boolean; reply?: string }>(a, {
      op: "unix",
      path: "/run/lobu/control.sock",
      text: '{"t":"ready","protocol":1}\n',
    });
    expect(bare.reply ?? "").toBe("");
    const forged = await ask<{ ok: boolean; reply?: string }>(a, {
      op: "unix",
      path: "/run/lobu/control.sock",
      text: `lobu-worker egress ${"A".repeat(43)}\nGET / HTTP/1.0\n\n`,
    });
    expect(forged.reply ?? "").toBe("");
  });

  it("sees only its own processes and cannot signal the gateway", async () => {
    const { pids } = await ask<{ pids: number[] }>(a, { op: "procs" });
    expect(pids.length).toBeLessThan(6);
    expect(await ask(a, { op: "kill", pid: process.pid })).toMatchObject({
      ok: false,
      code: "ESRCH",
    });
    const unshare = await ask<{ code: number }>(a, { op: "sh", cmd: "unshare -U true" });
    expect(unshare.code).not.toBe(0);
  });

  it("is held to its pids limit", async () => {
    const c = await driver.start(makeSpec(dir, "iso-pids", { pids: 24 }), egress);
    const res = await ask<{ started: number; failed: number }>(c, {
      op: "spawnMany",
      count: 60,
    });
    expect(res.started).toBeLessThan(24);
    expect(res.failed).toBeGreaterThan(0);
    await driver.stop("iso-pids");
  });

  it.skipIf(process.getuid?.() !== 0)(
    "is held to disk_mb by a loop-mounted volume image: writes fail with ENOSPC",
    async () => {
      const s = await driver.start(makeSpec(dir, "iso-disk", { diskMb: 16 }), egress);
      const big = await ask<{ ok: boolean; code: string }>(s, {
        op: "write",
        path: "/workspace/big",
        bytes: 64 * 1024 * 1024,
      });
      expect(big.ok).toBe(false);
      expect(["ENOSPC", "EFBIG"]).toContain(big.code);
      expect((await s.usage()).diskBytes).toBeLessThanOrEqual(16 * 1024 * 1024);
      expect(await ask(s, { op: "procs" })).toHaveProperty("pids");
      await driver.stop("iso-disk");
      // Stopped: the image is unmounted, the folder is a plain folder again.
      const mounts = spawnSync("findmnt", ["-n", join(dir, "volumes", "iso-disk")]);
      expect(mounts.stdout.toString()).toBe("");
    },
  );

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

  it("scales to zero: stop removes the container, start wakes it on the same volume", async () => {
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
    const left = spawnSync(
      "docker",
      [
        "ps",
        "-a",
        "--filter",
        "label=lobu.sandbox=iso-a",
        "--filter",
        `label=lobu.owner=${digest(join(dir, "state"), 12)}`,
        "--format",
        "{{.Names}}",
      ],
      { encoding: "utf8" },
    );
    expect(left.stdout.trim()).toBe("");
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
}
