import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { type ApiGateway, startApiGateway } from "./helpers.ts";

/**
 * Query parameters are validated one way everywhere: every query parameter
 * docs/openapi.yaml documents is sent malformed, and must get a 400 that names
 * it and the form expected. The admin UI's JSON API follows the same rules.
 */

interface Parameter {
  name: string;
  in: string;
}
const spec = parse(
  readFileSync(join(import.meta.dirname, "../../../../docs/openapi.yaml"), "utf8"),
) as { paths: Record<string, Record<string, { parameters?: Parameter[] }>> };

/** Malformed values, by parameter name. */
const BAD: Record<string, string[]> = {
  limit: ["-1", "0", "abc", "1e3", "2.5", "+5", " 5", "1001", "99999999999999999999"],
  after: ["abc", "-1", "1-2-3", "12345678901234567", "1.5"],
  cursor: ["a b", "../x", "x".repeat(129), "sb_1;2"],
  since: ["yesterday", "2025-02-31", "2025-1-1", "20250101"],
  stream: ["yes", "TRUE", "2"],
  user: ["x".repeat(201), "a\nb"],
  action: ["x".repeat(101), "a\u0000b"],
};
/** Good values: the route runs (2xx, or 404 for the dummy ids in the path). */
const GOOD: Record<string, string> = {
  limit: "1000",
  after: "0",
  cursor: "sb_0",
  since: "2024-02-29",
  stream: "false",
  user: "alice",
  action: "egress",
};

const documented = Object.entries(spec.paths)
  .filter(([path]) => path.startsWith("/api/v1/"))
  .flatMap(([path, ops]) =>
    Object.entries(ops)
      .filter(([method]) => ["get", "post", "put", "patch", "delete"].includes(method))
      .flatMap(([method, op]) =>
        (op.parameters ?? [])
          .filter((p) => p.in === "query")
          .map((p) => ({ method: method.toUpperCase(), path, name: p.name })),
      ),
  );

let api: ApiGateway;
let messageId: string;
beforeAll(async () => {
  api = await startApiGateway();
  const res = await api.call(api.adminToken, "POST", "/api/v1/agents/default/messages", {
    user: "alice",
    text: "hello",
  });
  messageId = ((await res.json()) as { messageId: string }).messageId;
});
afterAll(() => api?.close());

const urlOf = (path: string, query: string) =>
  `${path
    .replace("{agentId}", "default")
    .replace("{messageId}", messageId)
    .replace(/\{[^}]+\}/g, "x")}?${query}`;

async function errorOf(res: Response) {
  return (
    (await res.json()) as {
      error: {
        code: string;
        message: string;
        hint: string;
        details: { parameter: string; expected: string };
      };
    }
  ).error;
}

describe("query parameters of the REST API", () => {
  it("has bad and good values for every documented parameter", () => {
    expect(documented.length).toBeGreaterThan(0);
    for (const { name } of documented) {
      expect(BAD[name], name).toBeDefined();
      expect(GOOD[name], name).toBeDefined();
    }
  });

  it.each(documented)("$method $path ?$name= refuses malformed values with 400", async (p) => {
    for (const bad of BAD[p.name]!) {
      const query = new URLSearchParams({ [p.name]: bad }).toString();
      const res = await fetch(`${api.url}${urlOf(p.path, query)}`, {
        method: p.method,
        headers: { authorization: `Bearer ${api.adminToken}`, "content-type": "application/json" },
        ...(p.method === "POST" ? { body: JSON.stringify({ user: "alice", text: "hi" }) } : {}),
      });
      expect(res.status, `${p.name}=${bad}`).toBe(400);
      const error = await errorOf(res);
      expect(error.code).toBe("invalid_query");
      expect(error.message).toContain(`query parameter ${p.name}=`);
      expect(error.details.parameter).toBe(p.name);
      expect(error.hint).toBe(`${p.name} must be ${error.details.expected}.`);
    }
    const good = await fetch(
      `${api.url}${urlOf(p.path, new URLSearchParams({ [p.name]: GOOD[p.name]! }).toString())}`,
      {
        method: p.method,
        headers: { authorization: `Bearer ${api.adminToken}`, "content-type": "application/json" },
        ...(p.method === "POST" ? { body: JSON.stringify({ user: "alice", text: "hi" }) } : {}),
      },
    );
    expect([200, 202, 404], `${p.name}=${GOOD[p.name]}`).toContain(good.status);
    await good.body?.cancel();
  });

  it("refuses a parameter given twice, and an empty value means absent", async () => {
    const twice = await api.call(
      api.adminToken,
      "GET",
      "/api/v1/agents/default/conversations?limit=1&limit=2",
    );
    expect(twice.status).toBe(400);
    expect((await errorOf(twice)).message).toBe("query parameter limit is given 2 times");
    const empty = await api.call(api.adminToken, "GET", "/api/v1/audit?limit=&action=");
    expect(empty.status).toBe(200);
  });

  it("checks Last-Event-ID like ?after=", async () => {
    const res = await fetch(`${api.url}/api/v1/messages/${messageId}/events`, {
      headers: { authorization: `Bearer ${api.adminToken}`, "last-event-id": "not-a-cursor" },
    });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).message).toMatch(/Last-Event-ID/);
  });
});

describe("query parameters of the admin UI's API", () => {
  let cookie: string;
  beforeAll(async () => {
    const login = await fetch(`${api.url}/admin/api/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: api.adminToken }),
    });
    cookie = login.headers
      .getSetCookie()
      .find((c) => c.startsWith("lobu_admin="))!
      .split(";")[0]!;
  });
  const get = (path: string) => fetch(`${api.url}/admin/api${path}`, { headers: { cookie } });

  it("validates them the same way", async () => {
    const bad: [string, string][] = [
      ["/audit?limit=-1", "limit"],
      ["/audit?limit=1e3", "limit"],
      ["/audit?actor=" + "x".repeat(201), "actor"],
      ["/audit?agent=" + "x".repeat(64), "agent"],
      ["/audit?nope=1", "nope"],
      ["/usage?since=2025-02-31", "since"],
      ["/sandboxes?limit=5", "limit"],
      ["/users?x=1", "x"],
    ];
    for (const [path, parameter] of bad) {
      const res = await get(path);
      expect(res.status, path).toBe(400);
      const error = await errorOf(res);
      expect(error.code, path).toBe("invalid_query");
      expect(error.details.parameter, path).toBe(parameter);
    }
    for (const path of ["/audit?limit=5&actor=api&agent=default&action=", "/usage?since="]) {
      expect((await get(path)).status, path).toBe(200);
    }
  });
});

describe("query parameters of the settings page's API", () => {
  let cookie: string;
  beforeAll(async () => {
    const link = await api.call(api.adminToken, "POST", "/api/v1/settings-links", {
      user: "alice",
    });
    const { url } = (await link.json()) as { url: string };
    const claim = await fetch(url, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "fragment=",
    });
    cookie = claim.headers
      .getSetCookie()
      .find((c) => c.startsWith("lobu_settings="))!
      .split(";")[0]!;
  });
  const get = (path: string) => fetch(`${api.url}/settings/api${path}`, { headers: { cookie } });

  it("refuses any query parameter: its routes take none", async () => {
    for (const [path, parameter] of [
      ["/state?limit=-1", "limit"],
      ["/session?after=abc", "after"],
      ["/memory?limit=99999999999", "limit"],
      ["/links?x=1", "x"],
    ] as const) {
      const res = await get(path);
      expect(res.status, path).toBe(400);
      const error = await errorOf(res);
      expect(error.code, path).toBe("invalid_query");
      expect(error.details.parameter, path).toBe(parameter);
    }
    expect((await get("/state")).status).toBe(200);
    // A refusal comes before the session check: nothing about the route is told.
    expect((await fetch(`${api.url}/settings/api/state?limit=-1`)).status).toBe(400);
  });
});
