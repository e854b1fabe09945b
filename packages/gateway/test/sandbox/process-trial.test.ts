import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createProcessDriver } from "../../src/sandbox/index.ts";
import { FIXTURE, scratch, testLogger } from "./helpers.ts";

/** The probe's trial sandbox runs a worker file of its own (src/sandbox/process/trial-worker.ts). */
describe.skipIf(process.platform !== "linux")("process driver trial sandbox", () => {
  const { dir, cleanup } = scratch();
  afterAll(cleanup);

  it("shows the trial worker even when the worker runtime does not include it", async () => {
    // Runtime: the worker package's directories and the fixture worker's, not the gateway's src/.
    const driver = createProcessDriver({
      stateDir: join(dir, "state"),
      launcher: { entry: FIXTURE, readyTimeoutMs: 5000 },
      logger: testLogger(),
      uidBase: 352_000,
    });
    try {
      expect(driver.runtimeBinds().some((p) => p.endsWith("/src"))).toBe(false);
      expect(await driver.trial()).toBeUndefined();
      expect(driver.running()).toEqual([]);
    } finally {
      await driver.close();
    }
  });
});
