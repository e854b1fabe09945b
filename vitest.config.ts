import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // End-to-end suites spawn real gateways and sandboxes; keep the machine from thrashing.
    maxWorkers: 2,
    env: { PI_OFFLINE: "1", LOBU_LOG_LEVEL: process.env.LOBU_LOG_LEVEL ?? "warn" },
  },
});
