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
  components: { parameters: Record<string, Parameter> };
};

interface Parameter {
  name: string;
  in: string;
  $ref?: string;
}
interface Operation {
  parameters?: Parameter[];
  "x-lobu-action"?: string;
}
const METHODS = ["get", "post", "put", "patch", "delete"];

/** The query parameters an operation documents (its own and its path's, $refs resolved). */
function queryParams(path: string, method: string): string[] {
  const item = spec.paths[path] as { parameters?: Parameter[] } & Record<string, Operation>;
  return [...(item.parameters ?? []), ...(item[method]?.parameters ?? [])]
    .map((p) => (p.$ref ? spec.components.parameters[p.$ref.split("/").at(-1)!]! : p))
    .filter((p) => p.in === "query")
    .map((p) => p.name)
    .sort();
}

/** Route → action, from the roles table of docs/api.md. */
function rolesTable(): Map<string, string> {
  const text = readFileSync(join(import.meta.dirname, "../../../../docs/api.md"), "utf8");
  const start = text.indexOf("\n## Roles\n");
  const section = text.slice(start, text.indexOf("\n## ", start + 1));
  const table = new Map<string, string>();
  for (const line of section.split("\n").filter((l) => l.startsWith("| `"))) {
    const [action, routes] = line.split("|").slice(1, 3);
    for (const m of routes!.matchAll(/`([A-Z]+) ([^`]+)`/g))
      table.set(`${m[1]!.toLowerCase()} /api/v1${m[2]}`, action!.trim().replace(/`/g, ""));
  }
  return table;
}

/** `/api/v1/agents/:agentId` → `/api/v1/agents/{agentId}` */
const toOpenApi = (path: string) => path.replace(/:([A-Za-z]+)/g, "{$1}");

let gw: Gateway;
let adminToken: string;
beforeAll(async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "lobu-openapi-"));
  gw = await startGateway({
    config: LobuConfig.parse({ sandbox: { driver: "host", allow_unsandboxed: true } }),
    dataDir,
    port: 0,
    env: {},
    log: createLogger("test", { level: "silent" }),
  });
  adminToken = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
});
afterAll(async () => {
  await gw?.close();
});

describe("docs/openapi.yaml", () => {
  it("documents every /api/v1 route the gateway serves, and nothing it does not", () => {
    const served = new Set(
      gw.app.routes
        .filter(
          (r) =>
            r.method !== "ALL" &&
            (r.path.startsWith("/api/v1/") ||
              r.path.startsWith("/mcp/") ||
              r.path === "/healthz" ||
              r.path === "/readyz"),
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

  it("names each operation's roles-matrix action as docs/api.md does", () => {
    const table = rolesTable();
    for (const [path, item] of Object.entries(spec.paths)) {
      if (!path.startsWith("/api/v1/")) continue;
      for (const method of METHODS.filter((m) => m in item)) {
        const op = (item as Record<string, Operation>)[method]!;
        expect(op["x-lobu-action"], `${method} ${path}`).toBe(table.get(`${method} ${path}`));
      }
    }
  });

  it("documents exactly the query parameters each route accepts", async () => {
    const served = gw.app.routes.filter((r) => r.method !== "ALL" && r.path.startsWith("/api/v1/"));
    for (const route of served) {
      const path = toOpenApi(route.path).replace(/\/$/, "");
      // Path parameters get dummy values: the query is checked before anything is looked up.
      const url = `${gw.url}${route.path.replace(/:[A-Za-z]+/g, "x")}?not_a_parameter=1`;
      const res = await fetch(url, {
        method: route.method,
        headers: { authorization: `Bearer ${adminToken}` },
      });
      const label = `${route.method} ${path}`;
      expect(res.status, label).toBe(400);
      const { error } = (await res.json()) as {
        error: { code: string; details: { parameter: string; accepted: string[] } };
      };
      expect(error.code, label).toBe("invalid_query");
      expect(error.details.parameter, label).toBe("not_a_parameter");
      expect([...error.details.accepted].sort(), label).toEqual(
        queryParams(path, route.method.toLowerCase()),
      );
    }
  });
});
