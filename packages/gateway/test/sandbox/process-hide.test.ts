import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createProcessDriver, WorkerLauncher } from "../../src/sandbox/index.ts";
import { FIXTURE, makeSpec, probe, scratch, TestEgress, testLogger } from "./helpers.ts";

/**
 * A gateway data dir that happens to lie inside a path the sandbox sees (the
 * runtime, e.g. a checkout) is hidden from it, except for the files the sandbox
 * is meant to see there (the CA bundle).
 */

describe.skipIf(process.platform !== "linux")("process driver hidden paths", () => {
  const { dir, cleanup } = scratch("lobu-hide-");
  const egress = new TestEgress(dir);
  // Inside the runtime every sandbox sees (the worker's node_modules); not under
  // /tmp, which each sandbox replaces with its own.
  const modules = new WorkerLauncher().runtimeDirs.find((d) => d.endsWith("node_modules"));
  const runtime = mkdtempSync(join(modules ?? "", ".lobu-hide-test-"));
  const data = join(runtime, "data");
  chmodSync(runtime, 0o755);
  mkdirSync(join(data, "ca"), { recursive: true });
  chmodSync(data, 0o700); // as the gateway creates its data dir
  writeFileSync(join(runtime, "visible.txt"), "runtime file");
  writeFileSync(join(data, "master.key"), "top secret");
  writeFileSync(join(data, "ca", "bundle.pem"), "CERTS");
  const driver = createProcessDriver({
    stateDir: join(dir, "state"),
    launcher: { entry: FIXTURE },
    logger: testLogger(),
    uidBase: 340_000,
    extraRoBinds: [join(data, "ca", "bundle.pem")],
    hidePaths: [data],
  });
  afterAll(async () => {
    await driver.close();
    await egress.close();
    rmSync(runtime, { recursive: true, force: true });
    cleanup();
  });

  it("hides the data dir but keeps the CA bundle inside it visible", async () => {
    const s = await driver.start(makeSpec(dir, "hide-a"), egress);
    expect(await probe(s, { op: "read", path: join(runtime, "visible.txt") })).toMatchObject({
      ok: true,
      data: "runtime file",
    });
    expect(await probe(s, { op: "read", path: join(data, "master.key") })).toMatchObject({
      ok: false,
    });
    expect(await probe(s, { op: "read", path: join(data, "ca", "bundle.pem") })).toMatchObject({
      ok: true,
      data: "CERTS",
    });
    const listing = await probe<{ entries: string[] }>(s, { op: "list", path: data });
    expect(listing.entries).toEqual(["ca"]);
  });
});
