import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, LobuConfig } from "@lobu/core";
import { type Gateway, startGateway } from "@lobu/gateway";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";

const spec = parse(
  readFileSync(join(import.meta.dirname, "../../../../docs/openapi.yaml"), "utf8"),
) as {
  paths: Record<string, Record<string, unknown>>;
};

/** `/api/v1/agents/:agentId` → `/api/v1/agents/{agentId}` */
const toOpenApi = (path: string) => path.replace(/:([A-Za-z]+)/g, "{$1}");

let gw: Gateway;
beforeAll(async () => {
  gw = await startGateway({
    config: LobuConfig.parse({ sandbox: { driver: "host", allow_unsandboxed: true } }),
    dataDir: mkdtempSync(join(tmpdir(), "lobu-openapi-")),
    port: 0,
    env: {},
    log: createLogger("test", { level: "silent" }),
  });
});
afterAll(() => gw?.close());

describe("docs/openapi.yaml", () => {
  it("documents every /api/v1 route the gateway serves, and nothing it does not", () => {
    const served = new Set(
      gw.app.routes
        .filter(
          (r) =>
            r.method !== "ALL" &&
            (r.path.startsWith("/api/v1/") || r.path === "/healthz" || r.path === "/readyz"),
        )
        .map((r) => `${r.method.toLowerCase()} ${toOpenApi(r.path).replace(/\/$/, "")}`),
    );
    const documented = new Set(
      Object.entries(spec.paths).flatMap(([path, ops]) =>
        Object.keys(ops)
          .filter((m) => ["get", "post", "put", "patch", "delete"].includes(m))
          .map((m) => `${m} ${path}`),
      ),
    );
    expect(
      [...served].filter((r) => !documented.has(r)),
      "served but not documented",
    ).toEqual([]);
    expect(
      [...documented].filter((r) => !served.has(r)),
      "documented but not served",
    ).toEqual([]);
  });
});
