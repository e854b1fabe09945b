import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { digest } from "@lobu/core";
import { dockerAvailable, ensureHostSandboxImage } from "@lobu/testkit";
import { describe, expect, it } from "vitest";
import { createDockerDriver } from "../../src/sandbox/docker-driver.ts";
import { FIXTURE, makeSpec, probe, testLogger } from "./helpers.ts";
import { isolationAttacks } from "./isolation-attacks.ts";

/**
 * The shared isolation attack suite (isolation-attacks.ts) against real
 * containers made by the `docker` driver through a real Docker Engine, once
 * per OCI runtime registered there (runc always; runsc, gVisor, as
 * scripts/setup.sh registers it), plus what only containers have: the
 * Engine's leftovers, the shared control socket, pids and disk limits. The
 * image is assembled from this host's Debian packages (testkit's
 * ensureHostSandboxImage) since no registry is reachable.
 */

const engine = process.platform === "linux" ? dockerAvailable() : { ok: false, why: "not Linux" };
if (!engine.ok)
  console.warn(`docker driver isolation suite skipped: ${engine.why} (start dockerd)`);
const registered = engine.ok
  ? spawnSync("docker", ["info", "--format", "{{json .Runtimes}}"], { encoding: "utf8" }).stdout
  : "";
const runtimes = ["runc", "runsc"].filter((r) => registered.includes(`"${r}"`));

const image = engine.ok ? ensureHostSandboxImage() : "";

/**
 * Why `runtime` cannot run the worker here, if it cannot: it must list a host
 * directory mounted read-only (Debian bookworm's runsc of 2022 answers EINVAL
 * to coreutils' statx, and its Sentry dies loading Node's modules).
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
  return `the ${runtime} runtime cannot list a bind-mounted host directory here (scripts/setup.sh registers a runsc that can): ${said.slice(0, 300)}`;
}

for (const runtime of runtimes.length > 0 ? runtimes : ["runc"]) {
  describe.skipIf(!engine.ok)(`docker driver isolation (${runtime})`, () => {
    // A registered runtime that cannot run the worker fails here, loudly, rather than skipping.
    const why = engine.ok ? unusable(runtime) : undefined;
    if (why) it("can run the worker", () => expect.fail(why));
    else suite(runtime);
  });
}

function suite(runtime: string): void {
  const owner = (dir: string) => digest(join(dir, "state"), 12);
  let ghost = "";
  let state = "";
  const ctx = isolationAttacks({
    driver: async (dir) => {
      state = owner(dir);
      const driver = createDockerDriver({
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
        `lobu.owner=${state}`,
        "--label",
        "lobu.sandbox=ghost",
        image,
        "true",
      ]);
      expect(made.status, made.stderr.toString()).toBe(0);
      const probed = await driver.probe();
      expect(probed, probed.details.join("; ")).toMatchObject({ ok: true, isolated: true });
      return driver;
    },
    extraEnv: { LOBU_CONTROL: "/run/lobu/control.sock" },
    otherEnvKeys: ["HOSTNAME", "LOBU_WORKER_TOKEN"],
    rootEntries: [
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
    ],
    hiddenPaths: ["/var/run/docker.sock"],
    etcSecrets: [],
    // gVisor checks a file's permissions before its mount's read-only flag.
    readOnlyCode: runtime === "runsc" ? "EACCES" : "EROFS",
    maxProcs: 5,
    userNamespaces: runtime === "runsc",
    afterStop: (id) => {
      const left = spawnSync(
        "docker",
        [
          "ps",
          "-a",
          "--filter",
          `label=lobu.sandbox=${id}`,
          "--filter",
          `label=lobu.owner=${state}`,
          "--format",
          "{{.Names}}",
        ],
        { encoding: "utf8" },
      );
      expect(left.stdout.trim()).toBe("");
    },
  });
  const ask = <T = Record<string, unknown>>(cmd: Record<string, unknown>) => probe<T>(ctx.a, cmd);

  it("removed the containers an earlier run of this data dir left", () => {
    const found = spawnSync("docker", ["ps", "-a", "-q", "--filter", `name=${ghost}`], {
      encoding: "utf8",
    });
    expect(found.stdout.trim()).toBe("");
  });

  it("cannot open another sandbox's control channel or egress through the control socket", async () => {
    // The control socket is shared by every container; without a token it answers nothing.
    const bare = await ask<{ ok: boolean; reply?: string }>({
      op: "unix",
      path: "/run/lobu/control.sock",
      text: '{"t":"ready","protocol":1}\n',
    });
    expect(bare.reply ?? "").toBe("");
    const forged = await ask<{ ok: boolean; reply?: string }>({
      op: "unix",
      path: "/run/lobu/control.sock",
      text: `lobu-worker egress ${"A".repeat(43)}\nGET / HTTP/1.0\n\n`,
    });
    expect(forged.reply ?? "").toBe("");
  });

  it("is held to its pids limit", async () => {
    const c = await ctx.driver.start(makeSpec(ctx.dir, "iso-pids", { pids: 24 }), ctx.egress);
    const res = await probe<{ started: number; failed: number }>(c, {
      op: "spawnMany",
      count: 60,
    });
    expect(res.started).toBeLessThan(24);
    expect(res.failed).toBeGreaterThan(0);
    await ctx.driver.stop("iso-pids");
  });

  it.skipIf(process.getuid?.() !== 0)(
    "is held to disk_mb by a loop-mounted volume image: writes fail with ENOSPC",
    async () => {
      const s = await ctx.driver.start(makeSpec(ctx.dir, "iso-disk", { diskMb: 16 }), ctx.egress);
      const big = await probe<{ ok: boolean; code: string }>(s, {
        op: "write",
        path: "/workspace/big",
        bytes: 64 * 1024 * 1024,
      });
      expect(big.ok).toBe(false);
      expect(["ENOSPC", "EFBIG"]).toContain(big.code);
      expect((await s.usage()).diskBytes).toBeLessThanOrEqual(16 * 1024 * 1024);
      expect(await probe(s, { op: "procs" })).toHaveProperty("pids");
      await ctx.driver.stop("iso-disk");
      // Stopped: the image is unmounted, the folder is a plain folder again.
      const mounts = spawnSync("findmnt", ["-n", join(ctx.dir, "volumes", "iso-disk")]);
      expect(mounts.stdout.toString()).toBe("");
    },
  );
}
