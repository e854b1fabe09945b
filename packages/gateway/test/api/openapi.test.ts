import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, LobuConfig, parseConfig } from "@lobu/core";
import { type Gateway, startGateway } from "@lobu/gateway";
import {
  type DiscordEmulator,
  removeDataDir,
  startDiscordEmulator,
  startTelegramEmulator,
  type TelegramEmulator,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import type { PlatformDriver } from "../platforms/conformance.ts";
import { googleChatDriver } from "../platforms/drivers/googlechat.ts";
import { slackDriver } from "../platforms/drivers/slack.ts";
import { teamsDriver } from "../platforms/drivers/teams.ts";
import { whatsappDriver } from "../platforms/drivers/whatsapp.ts";

const spec = parse(
  readFileSync(join(import.meta.dirname, "../../../../docs/openapi.yaml"), "utf8"),
) as {
  paths: Record<string, Record<string, unknown>>;
  components: { parameters: Record<string, Parameter>; securitySchemes: Record<string, unknown> };
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

/** Where chat platforms call the gateway: `/<platform>/…`. */
const PLATFORM_PREFIX = /^\/(slack|telegram|discord|whatsapp|teams|googlechat)\//;

/** `get /a/{b}` for every operation the spec documents (optionally only some paths). */
function documentedOperations(keep: (path: string) => boolean): Set<string> {
  return new Set(
    Object.entries(spec.paths)
      .filter(([path]) => keep(path))
      .flatMap(([path, ops]) =>
        Object.keys(ops)
          .filter((m) => METHODS.includes(m))
          .map((m) => `${m} ${path}`),
      ),
  );
}

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
    // Platform routes exist only with their platform set up: checked below, with all of them.
    const documented = documentedOperations((path) => !PLATFORM_PREFIX.test(path));
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

describe("docs/openapi.yaml: the chat platforms' inbound routes", () => {
  // Every platform set up at once, Telegram and Discord with a named bot each, against the emulators.
  const drivers: PlatformDriver[] = [
    slackDriver(),
    whatsappDriver(),
    teamsDriver(),
    googleChatDriver(),
  ];
  let tg: TelegramEmulator | undefined;
  let dc: DiscordEmulator | undefined;
  let platformGw: Gateway | undefined;
  let dataDir: string | undefined;

  beforeAll(async () => {
    const started = await Promise.all(drivers.map((d) => d.start()));
    tg = await startTelegramEmulator({ botToken: "7200000001:AAmain", botUsername: "main_bot" });
    tg.addBot({ botToken: "7200000002:AAhelp", botUsername: "help_bot" });
    dc = await startDiscordEmulator({ botToken: "MTAmain.discord.token", botUsername: "main" });
    const helper = dc.addBot({ botToken: "MTAhelp.discord.token", botUsername: "help" });
    const toml = [
      "[sandbox]",
      'driver = "host"',
      "allow_unsandboxed = true",
      "[agents.main]",
      "[agents.help]",
      ...started.flatMap((s) => s.toml),
      "[platforms.telegram]",
      'mode = "webhook"',
      "[platforms.telegram.bots.help]",
      'agent = "help"',
      'bot_token_env = "HELP_TELEGRAM_TOKEN"',
      "[platforms.discord]",
      "register_commands = false",
      "[platforms.discord.bots.help]",
      'agent = "help"',
      'bot_token_env = "HELP_DISCORD_TOKEN"',
      'public_key_env = "HELP_DISCORD_PUBLIC_KEY"',
    ].join("\n");
    dataDir = mkdtempSync(join(tmpdir(), "lobu-openapi-platforms-"));
    platformGw = await startGateway({
      config: parseConfig(toml),
      dataDir,
      port: 0,
      env: {
        ...Object.assign({}, ...started.map((s) => s.env)),
        TELEGRAM_BOT_TOKEN: "7200000001:AAmain",
        HELP_TELEGRAM_TOKEN: "7200000002:AAhelp",
        TELEGRAM_API_ROOT: tg.url,
        DISCORD_BOT_TOKEN: "MTAmain.discord.token",
        DISCORD_PUBLIC_KEY: dc.publicKey,
        HELP_DISCORD_TOKEN: "MTAhelp.discord.token",
        HELP_DISCORD_PUBLIC_KEY: helper.publicKey,
        DISCORD_API_ROOT: dc.apiUrl,
      },
      log: createLogger("test", { level: "silent" }),
    });
  });

  afterAll(async () => {
    await platformGw?.close();
    await Promise.all(drivers.map((d) => d.close()));
    await tg?.close();
    await dc?.close();
    if (dataDir) removeDataDir(dataDir);
  });

  it("documents every platform route the gateway serves, and nothing it does not", () => {
    const served = new Set(
      platformGw!.app.routes
        .filter((r) => r.method !== "ALL" && PLATFORM_PREFIX.test(r.path))
        .map((r) => `${r.method.toLowerCase()} ${toOpenApi(r.path)}`),
    );
    // A named bot's routes are served under its id; the spec names that segment {bot}.
    const named = new Set(
      [...served].map((r) => r.replace(/^(\w+ \/(?:telegram|discord))\/help\//, "$1/{bot}/")),
    );
    const documented = documentedOperations((path) => PLATFORM_PREFIX.test(path));
    expect(
      [...named].filter((r) => !documented.has(r)),
      "served but not documented",
    ).toEqual([]);
    expect(
      [...documented].filter((r) => !named.has(r)),
      "documented but not served",
    ).toEqual([]);
  });

  it("describes how each platform route is authenticated", () => {
    const schemes = (spec.components as { securitySchemes: Record<string, unknown> })
      .securitySchemes;
    for (const [path, item] of Object.entries(spec.paths)) {
      if (!PLATFORM_PREFIX.test(path)) continue;
      for (const method of METHODS.filter((m) => m in item)) {
        const op = (item as Record<string, { security?: Record<string, unknown>[] }>)[method]!;
        const label = `${method} ${path}`;
        // Explicit: a platform route never takes the Lobu bearer token the spec defaults to.
        expect(op.security, label).toBeDefined();
        for (const requirement of op.security!) {
          expect(Object.keys(requirement), label).not.toContain("bearer");
          for (const name of Object.keys(requirement)) expect(schemes[name], label).toBeDefined();
        }
      }
    }
  });
});
