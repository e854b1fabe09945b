/**
 * `docker` sandbox driver: cold wake (container create → worker ready) and stop
 * (container removed), with the attacker fixture and with the real worker, on
 * the image testkit assembles from this host's packages. Each OCI runtime
 * registered with dockerd that can run the worker here is measured.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { createLogger } from "@lobu/core";
import { dockerAvailable, ensureHostSandboxImage } from "@lobu/testkit";
import { createDockerDriver } from "../packages/gateway/src/sandbox/docker-driver.ts";
import { FIXTURE, makeSpec, TestEgress } from "../packages/gateway/test/sandbox/helpers.ts";
import { type BenchResult, type BenchRow, median, percentile, round } from "./lib.ts";

const WAKES = 10;

export default async function bench(): Promise<BenchResult> {
  const engine = dockerAvailable();
  if (!engine.ok)
    return { name: "sandbox-docker", rows: [], meta: { skipped: engine.why ?? "no dockerd" } };
  const image = ensureHostSandboxImage();
  const registered = spawnSync("docker", ["info", "--format", "{{json .Runtimes}}"], {
    encoding: "utf8",
  }).stdout;
  const rows: BenchRow[] = [];
  const skipped: Record<string, string> = {};
  for (const runtime of ["runc", "runsc"].filter((r) => registered.includes(`"${r}"`))) {
    for (const worker of ["fixture", "real worker"] as const) {
      const dir = mkdtempSync("/tmp/lobu-bench-docker-");
      const egress = new TestEgress(dir);
      const driver = createDockerDriver({
        stateDir: join(dir, "state"),
        image,
        runtime,
        launcher: worker === "fixture" ? { entry: FIXTURE } : {},
        logger: createLogger("bench", { level: "error" }),
        uidBase: 420_000,
      });
      try {
        const wakes: number[] = [];
        const stops: number[] = [];
        for (let i = 0; i < WAKES; i++) {
          const t0 = performance.now();
          await driver.start(makeSpec(dir, "wake", { memoryMb: 512 }), egress);
          wakes.push(performance.now() - t0);
          const t1 = performance.now();
          await driver.stop("wake", { graceMs: 2000 });
          stops.push(performance.now() - t1);
        }
        rows.push(
          {
            metric: `${runtime}, ${worker}: cold wake (create → ready) median`,
            value: round(median(wakes)),
            unit: "ms",
          },
          {
            metric: `${runtime}, ${worker}: cold wake p99`,
            value: round(percentile(wakes, 99)),
            unit: "ms",
          },
          {
            metric: `${runtime}, ${worker}: stop (container removed) median`,
            value: round(median(stops)),
            unit: "ms",
          },
        );
      } catch (err) {
        skipped[`${runtime}, ${worker}`] = (err as Error).message.split("\n")[0]!.slice(0, 200);
      } finally {
        await driver.close();
        await egress.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  return { name: "sandbox-docker", rows, meta: { wakes: WAKES, image, skipped } };
}
