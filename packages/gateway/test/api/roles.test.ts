import { readFileSync } from "node:fs";
import { join } from "node:path";
import { newId } from "@lobu/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACTIONS, type Access, type Action, ROLES_MATRIX } from "../../src/access/permissions.ts";
import type { TokenRole } from "../../src/access/tokens.ts";
import { type Origin, userKeyOf } from "../../src/domain/origin.ts";
import { type ApiGateway, startApiGateway } from "./helpers.ts";

/**
 * The roles matrix, cell by cell: the table in docs/api.md (Roles) is the
 * expectation. Every `/api/v1` route it lists is called with an admin, a client
 * and a user token — about people each token acts for and people it does not
 * (another namespace, the admin namespace, a Slack user) — and must let in or
 * refuse (403 with a clear message) exactly as the table says.
 */

const ROLES: TokenRole[] = ["admin", "client", "user"];

interface DocRow {
  action: Action;
  routes: string[];
  access: Record<TokenRole, Access>;
}

function docsTable(): DocRow[] {
  const text = readFileSync(join(import.meta.dirname, "../../../../docs/api.md"), "utf8");
  const start = text.indexOf("\n## Roles\n");
  const section = text.slice(start, text.indexOf("\n## ", start + 1));
  return section
    .split("\n")
    .filter((line) => line.startsWith("| `"))
    .map((line) => {
      const cells = line
        .split("|")
        .slice(1, -1)
        .map((c) => c.trim());
      return {
        action: cells[0]!.replace(/`/g, "") as Action,
        routes: [...cells[1]!.matchAll(/`([A-Z]+) ([^`]+)`/g)].map((m) => `${m[1]} ${m[2]}`),
        access: { admin: cells[2], client: cells[3], user: cells[4] } as Record<TokenRole, Access>,
      };
    });
}
const TABLE = docsTable();

// People: two of the client's namespace (acme), one of another app's, a Slack
// user, and one of the admin namespace (api::dave).
type Person = "alice" | "bob" | "carol" | "slack" | "dave";
const PEOPLE: Person[] = ["alice", "bob", "carol", "slack", "dave"];
const ORIGINS: Record<Person, Origin> = {
  alice: {
    platform: "api",
    workspace: "acme",
    channelId: "default",
    userId: "alice",
    isDirect: true,
  },
  bob: { platform: "api", workspace: "acme", channelId: "default", userId: "bob", isDirect: true },
  carol: {
    platform: "api",
    workspace: "other",
    channelId: "default",
    userId: "carol",
    isDirect: true,
  },
  slack: {
    platform: "slack",
    workspace: "T0001",
    channelId: "D0001",
    userId: "U0001",
    isDirect: true,
  },
  dave: { platform: "api", workspace: "", channelId: "default", userId: "dave", isDirect: true },
};
// Tokens as subjects of tokens.*: a user token of acme, one of another namespace, a client.
type TokenKind = "acmeUser" | "otherUser" | "otherClient";
const TOKEN_KINDS: TokenKind[] = ["acmeUser", "otherUser", "otherClient"];

/** Whom the client token (namespace acme) and the user token (acme, alice) act for. */
const SCOPE: Record<Exclude<TokenRole, "admin">, ReadonlySet<string>> = {
  client: new Set(["alice", "bob", "acmeUser"]),
  user: new Set(["alice"]),
};

let api: ApiGateway;
const tokens = {} as Record<TokenRole, string>;
const fixtures = {} as Record<Person, { conversationId: string; messageId: string }>;
let counter = 0;
const unique = (prefix: string) => `${prefix}-${++counter}`;

beforeAll(async () => {
  api = await startApiGateway({
    agents: { default: { tools: ["bash", "read"], policy: { tools: { bash: "ask" } } } },
  });
  tokens.admin = api.adminToken;
  tokens.client = (await api.token({ name: "acme app", role: "client", namespace: "acme" })).token;
  tokens.user = (
    await api.token({ name: "alice", role: "user", namespace: "acme", user: "alice" })
  ).token;
  for (const person of PEOPLE) {
    const r = await api.gw.services.inbound.submit({
      agentId: "default",
      origin: ORIGINS[person],
      text: `hello from ${person}`,
      eventId: newId("evt"),
    });
    fixtures[person] = { conversationId: r.conversationId!, messageId: r.messageId! };
    scheduleIds[person] = await scheduleOf(person);
  }
});
afterAll(() => api?.close());

/** A file the agent sent into each person's conversation (send_file), by person. */
const fileIds = {} as Record<Person, string>;
beforeAll(async () => {
  for (const person of PEOPLE) {
    fileIds[person] = await api.gw.services.fileBlobs.put(
      {
        kind: "sent",
        origin: ORIGINS[person],
        conversationId: fixtures[person].conversationId,
        messageId: fixtures[person].messageId,
        name: "result.txt",
        mimeType: "text/plain",
      },
      Buffer.from(`for ${person}`),
      600_000,
    );
  }
});

const call = (token: string, method: string, path: string, body?: unknown) =>
  api.call(token, method, `/api/v1${path}`, body);

async function pendingApproval(person: Person): Promise<string> {
  const requestId = newId("rq");
  await api.gw.services.requests.register(
    {
      requestId,
      messageId: fixtures[person].messageId,
      sandboxId: fixtures[person].conversationId,
      agentId: "default",
      origin: ORIGINS[person],
      event: { type: "approval_request", requestId, tool: "bash", input: {}, summary: "Run: ls" },
    },
    600_000,
  );
  return requestId;
}

/** A reminder of `person`'s, an hour from now. */
async function scheduleOf(person: Person): Promise<string> {
  const created = await api.gw.services.schedules.create({
    agentId: "default",
    origin: ORIGINS[person],
    text: `stretch, ${person}`,
    plan: { kind: "once", timezone: "UTC", nextRunAt: Date.now() + 3_600_000 },
  });
  return created.id;
}
const scheduleIds = {} as Record<Person, string>;

async function tokenOf(kind: TokenKind): Promise<{ id: string }> {
  const body =
    kind === "acmeUser"
      ? { name: unique("t"), role: "user", namespace: "acme", user: "bob" }
      : kind === "otherUser"
        ? { name: unique("t"), role: "user", namespace: "other", user: "carol" }
        : { name: unique("t"), role: "client", namespace: "other" };
  return api.token(body);
}

async function scratchAgent(): Promise<string> {
  const id = unique("scratch");
  expect((await call(tokens.admin, "POST", "/agents", { id })).status).toBe(201);
  return id;
}

/** How to call one route, and what a call that got through answers. */
interface Probe {
  ok: number;
  /** Routes about someone: each is called about every one of these. */
  subjects?: readonly string[];
  /** List routes: the ids of `subject` that a token in scope must see, and others must not. */
  list?: { ids(body: unknown): string[]; idOf(subject: string): string };
  call(token: string, role: TokenRole, subject?: string): Promise<Response>;
}

const listedTokens: Record<TokenKind, string> = {} as Record<TokenKind, string>;

const PROBES: Record<string, Probe> = {
  "GET /info": { ok: 200, call: (t) => call(t, "GET", "/info") },
  "GET /agents": { ok: 200, call: (t) => call(t, "GET", "/agents") },
  "GET /agents/{agentId}": { ok: 200, call: (t) => call(t, "GET", "/agents/default") },
  "POST /agents": {
    ok: 201,
    call: (t) => call(t, "POST", "/agents", { id: unique("made") }),
  },
  "PATCH /agents/{agentId}": {
    ok: 200,
    call: async (t) => call(t, "PATCH", `/agents/${await scratchAgent()}`, { name: "Renamed" }),
  },
  "DELETE /agents/{agentId}": {
    ok: 204,
    call: async (t) => call(t, "DELETE", `/agents/${await scratchAgent()}`),
  },
  "GET /providers": { ok: 200, call: (t) => call(t, "GET", "/providers") },
  "GET /agents/{agentId}/secrets": {
    ok: 200,
    call: (t) => call(t, "GET", "/agents/default/secrets"),
  },
  "PUT /agents/{agentId}/secrets/{name}": {
    ok: 200,
    call: (t) => call(t, "PUT", `/agents/default/secrets/${unique("s")}`, { value: "v" }),
  },
  "DELETE /agents/{agentId}/secrets/{name}": {
    ok: 204,
    call: async (t) => {
      const name = unique("s");
      await call(tokens.admin, "PUT", `/agents/default/secrets/${name}`, { value: "v" });
      return call(t, "DELETE", `/agents/default/secrets/${name}`);
    },
  },
  "GET /secrets": { ok: 200, call: (t) => call(t, "GET", "/secrets") },
  "PUT /secrets/{name}": {
    ok: 200,
    call: (t) => call(t, "PUT", `/secrets/${unique("s")}`, { value: "v" }),
  },
  "DELETE /secrets/{name}": {
    ok: 204,
    call: async (t) => {
      const name = unique("s");
      await call(tokens.admin, "PUT", `/secrets/${name}`, { value: "v" });
      return call(t, "DELETE", `/secrets/${name}`);
    },
  },
  "POST /agents/{agentId}/messages": {
    ok: 202,
    subjects: ["alice", "bob"],
    call: (t, _role, who) => call(t, "POST", "/agents/default/messages", { user: who, text: "hi" }),
  },
  "GET /messages/{messageId}": {
    ok: 200,
    subjects: PEOPLE,
    call: (t, _role, who) => call(t, "GET", `/messages/${fixtures[who as Person].messageId}`),
  },
  "GET /messages/{messageId}/events": {
    ok: 200,
    subjects: PEOPLE,
    call: async (t, _role, who) => {
      const res = await call(t, "GET", `/messages/${fixtures[who as Person].messageId}/events`);
      // Only the gate matters here, not the events: hang up at once.
      if (res.status === 200) await res.body?.cancel();
      return res;
    },
  },
  "GET /files/{fileId}": {
    ok: 200,
    subjects: PEOPLE,
    call: (t, _role, who) => call(t, "GET", `/files/${fileIds[who as Person]}`),
  },
  "GET /agents/{agentId}/conversations": {
    ok: 200,
    list: {
      ids: (body) => (body as { conversations: { id: string }[] }).conversations.map((c) => c.id),
      idOf: (who) => fixtures[who as Person].conversationId,
    },
    subjects: PEOPLE,
    call: (t) => call(t, "GET", "/agents/default/conversations"),
  },
  "GET /conversations/{conversationId}/messages": {
    ok: 200,
    subjects: PEOPLE,
    call: (t, _role, who) =>
      call(t, "GET", `/conversations/${fixtures[who as Person].conversationId}/messages`),
  },
  "POST /requests/{requestId}/answer": {
    ok: 200,
    subjects: PEOPLE,
    call: async (t, _role, who) =>
      call(t, "POST", `/requests/${await pendingApproval(who as Person)}/answer`, {
        choice: "approve",
      }),
  },
  // A finished message of the person: a call that got through the gate finds nothing running (409).
  "POST /messages/{messageId}/stop": {
    ok: 409,
    subjects: PEOPLE,
    call: async (t, _role, who) =>
      call(t, "POST", `/messages/${await finishedMessage(who as Person)}/stop`),
  },
  "POST /conversations/{conversationId}/stop": {
    ok: 409,
    subjects: PEOPLE,
    call: async (t, _role, who) =>
      call(t, "POST", `/conversations/${await quietConversation(who as Person)}/stop?queue=clear`),
  },
  "POST /settings-links": {
    ok: 201,
    subjects: ["alice", "bob"],
    call: (t, _role, who) => call(t, "POST", "/settings-links", { user: who }),
  },
  "GET /sandboxes": { ok: 200, call: (t) => call(t, "GET", "/sandboxes") },
  // No sandbox exists: a call that got through the gate finds none (404, not 403).
  "GET /sandboxes/{id}": { ok: 404, call: (t) => call(t, "GET", "/sandboxes/sb_none") },
  "POST /sandboxes/{id}/stop": { ok: 404, call: (t) => call(t, "POST", "/sandboxes/sb_none/stop") },
  "POST /sandboxes/{id}/reset": {
    ok: 404,
    call: (t) => call(t, "POST", "/sandboxes/sb_none/reset"),
  },
  "POST /sandboxes/{id}/exec": {
    ok: 404,
    call: (t) => call(t, "POST", "/sandboxes/sb_none/exec", { command: "true" }),
  },
  "GET /tokens": {
    ok: 200,
    list: {
      ids: (body) => (body as { tokens: { id: string }[] }).tokens.map((t) => t.id),
      idOf: (kind) => listedTokens[kind as TokenKind],
    },
    subjects: TOKEN_KINDS,
    call: (t) => call(t, "GET", "/tokens"),
  },
  "POST /tokens": {
    ok: 201,
    subjects: ["acmeUser", "otherUser"],
    call: (t, _role, kind) =>
      call(t, "POST", "/tokens", {
        name: unique("new"),
        role: "user",
        namespace: kind === "acmeUser" ? "acme" : "other",
        user: "someone",
      }),
  },
  "DELETE /tokens/{id}": {
    ok: 204,
    subjects: TOKEN_KINDS,
    call: async (t, _role, kind) =>
      call(t, "DELETE", `/tokens/${(await tokenOf(kind as TokenKind)).id}`),
  },
  "GET /audit": { ok: 200, call: (t) => call(t, "GET", "/audit") },
  "GET /usage": { ok: 200, call: (t) => call(t, "GET", "/usage") },
  "GET /agents/{agentId}/schedules": {
    ok: 200,
    list: {
      ids: (body) => (body as { schedules: { id: string }[] }).schedules.map((s) => s.id),
      idOf: (who) => scheduleIds[who as Person],
    },
    subjects: PEOPLE,
    call: (t) => call(t, "GET", "/agents/default/schedules"),
  },
  "DELETE /agents/{agentId}/schedules/{scheduleId}": {
    ok: 204,
    subjects: PEOPLE,
    call: async (t, _role, who) =>
      call(t, "DELETE", `/agents/default/schedules/${await scheduleOf(who as Person)}`),
  },
  "GET /admin/links": { ok: 200, call: (t) => call(t, "GET", "/admin/links") },
  "DELETE /admin/links/{userKey}": {
    ok: 200,
    call: (t) => call(t, "DELETE", `/admin/links/${encodeURIComponent(keyOf("slack"))}`),
  },
  "GET /admin/people/{userKey}/export": {
    ok: 200,
    subjects: PEOPLE,
    call: (t, _role, who) =>
      call(t, "GET", `/admin/people/${encodeURIComponent(keyOf(who as Person))}/export`),
  },
  // Last in the table: erasing alice also revokes alice's user token, so a new one is made.
  "DELETE /admin/people/{userKey}": {
    ok: 200,
    subjects: ["carol", "slack", "alice"],
    call: async (t, _role, who) => {
      const res = await call(
        t,
        "DELETE",
        `/admin/people/${encodeURIComponent(keyOf(who as Person))}`,
      );
      if (res.status === 200 && who === "alice")
        tokens.user = (
          await api.token({ name: "alice", role: "user", namespace: "acme", user: "alice" })
        ).token;
      return res;
    },
  },
};

function keyOf(who: Person): string {
  return userKeyOf(ORIGINS[who]);
}

/** Expect `status`; on a mismatch the message shows what the gateway said. */
async function expectStatus(res: Response, status: number, label: string): Promise<void> {
  if (res.status !== status) expect(res.status, `${label}: ${await res.text()}`).toBe(status);
}

const errorOf = async (res: Response) =>
  ((await res.json()) as { error: { code: string; message: string; hint?: string } }).error;

describe("the roles matrix", () => {
  it("is documented in docs/api.md exactly as the gateway enforces it", () => {
    const documented = Object.fromEntries(TABLE.map((r) => [r.action, r.access]));
    expect(documented).toEqual(ROLES_MATRIX);
    expect(Object.keys(ACTIONS).sort()).toEqual(TABLE.map((r) => r.action).sort());
  });

  it("lists every route the gateway serves under /api/v1 once", () => {
    const served = api.gw.app.routes
      .filter((r) => r.method !== "ALL" && r.path.startsWith("/api/v1/"))
      .map(
        (r) =>
          `${r.method} ${r.path
            .slice("/api/v1".length)
            .replace(/\/$/, "")
            .replace(/:([A-Za-z]+)/g, "{$1}")}`,
      );
    const documented = TABLE.flatMap((r) => r.routes);
    expect(new Set(documented).size).toBe(documented.length);
    expect([...new Set(served)].sort()).toEqual([...documented].sort());
    expect(Object.keys(PROBES).sort()).toEqual([...documented].sort());
  });

  it("refuses every route without a token (401)", async () => {
    for (const route of TABLE.flatMap((r) => r.routes)) {
      const [method, path] = route.split(" ") as [string, string];
      const res = await api.call(undefined, method, `/api/v1${path.replace(/\{[^}]+\}/g, "x")}`);
      expect(res.status, route).toBe(401);
    }
  });

  const cells = TABLE.flatMap((row) =>
    row.routes.flatMap((route) =>
      ROLES.map((role) => ({ route, role, action: row.action, access: row.access[role] })),
    ),
  );

  it.each(cells)("$route as $role: $access", async ({ route, role, action, access }) => {
    const probe = PROBES[route]!;
    const token = tokens[role];
    if (access === "none") {
      const res = await probe.call(token, role, probe.subjects?.[0]);
      expect(res.status).toBe(403);
      const error = await errorOf(res);
      expect(error.code).toBe("forbidden");
      expect(error.message).toBe(`a ${role} token may not ${ACTIONS[action]}`);
      expect(error.hint).toMatch(/admin token/);
      return;
    }
    const inScope = (who: string) => access === "all" || SCOPE[role as "client"].has(who);
    if (probe.list) {
      for (const kind of TOKEN_KINDS) listedTokens[kind] ??= (await tokenOf(kind)).id;
      const res = await probe.call(token, role);
      expect(res.status).toBe(probe.ok);
      const ids = probe.list.ids(await res.json());
      for (const who of probe.subjects ?? []) {
        if (inScope(who)) expect(ids, who).toContain(probe.list.idOf(who));
        else expect(ids, who).not.toContain(probe.list.idOf(who));
      }
      return;
    }
    if (!probe.subjects) {
      const res = await probe.call(token, role);
      await expectStatus(res, probe.ok, route);
      return;
    }
    for (const who of probe.subjects) {
      const res = await probe.call(token, role, who);
      if (inScope(who)) {
        await expectStatus(res, probe.ok, who);
      } else {
        expect(res.status, who).toBe(403);
        const error = await errorOf(res);
        expect(error.code).toBe("forbidden");
        expect(error.message).toMatch(/acts only for api user/);
      }
    }
  });
});

describe("what 'own' means", () => {
  it("puts a client token's people in its namespace, whatever user it names", async () => {
    const res = await call(tokens.client, "POST", "/agents/default/messages", {
      user: "dave",
      text: "am I dave?",
    });
    const { messageId } = (await res.json()) as { messageId: string };
    const rec = await api.gw.services.conversations.getMessage(messageId);
    expect(rec?.origin).toMatchObject({ platform: "api", workspace: "acme", userId: "dave" });
    // …a different person from the admin namespace's dave, whose message stays out of reach.
    expect((await call(tokens.client, "GET", `/messages/${fixtures.dave.messageId}`)).status).toBe(
      403,
    );
  });

  it("lets a client create only user tokens, in its own namespace", async () => {
    const refused = [
      { name: "x", role: "client" },
      { name: "x", role: "admin" },
      { name: "x", role: "user", user: "alice", namespace: "other" },
    ];
    for (const body of refused) {
      const res = await call(tokens.client, "POST", "/tokens", body);
      expect(res.status, JSON.stringify(body)).toBe(403);
    }
    const made = await call(tokens.client, "POST", "/tokens", {
      name: "alice's phone",
      role: "user",
      user: "alice",
    });
    expect(made.status).toBe(201);
    const info = (await made.json()) as { namespace: string; user: string; expiresAt: number };
    expect(info).toMatchObject({ namespace: "acme", user: "alice" });
    // User tokens expire: a day unless asked otherwise, 30 days at most.
    expect(info.expiresAt - Date.now()).toBeGreaterThan(23 * 3_600_000);
    expect(info.expiresAt - Date.now()).toBeLessThanOrEqual(24 * 3_600_000);
    const tooLong = await call(tokens.client, "POST", "/tokens", {
      name: "forever",
      role: "user",
      user: "alice",
      expiresInSec: 31 * 86_400,
    });
    expect(tooLong.status).toBe(400);
  });

  it("revokes the user tokens a client created along with it", async () => {
    const app = await api.token({ name: "short-lived app", role: "client", namespace: "tmp" });
    const child = await api.token({ name: "its user", role: "user", user: "u" }, app.token);
    expect((await call(child.token, "GET", "/info")).status).toBe(200);
    expect((await call(tokens.admin, "DELETE", `/tokens/${app.id}`)).status).toBe(204);
    expect((await call(child.token, "GET", "/info")).status).toBe(401);
  });

  it("answers as the person: 'always' only for tools the person could allow", async () => {
    // bash is "ask" for this agent: alice could allow it herself, so the app may for her.
    const ok = await call(
      tokens.user,
      "POST",
      `/requests/${await pendingApproval("alice")}/answer`,
      {
        choice: "always",
      },
    );
    expect(ok.status).toBe(200);
    const settings = await api.gw.services.userSettings.get("default", "api:acme:alice");
    expect(settings.toolPolicy).toEqual({ bash: "allow" });
    // Recorded as answered by alice (through the app), not by an operator.
    expect(((await ok.json()) as { request: { answer: { by: string } } }).request.answer.by).toBe(
      "api:alice",
    );
  });
});

/** A message of `person` that has finished (nothing to stop), in a conversation of its own. */
async function finishedMessage(person: Person): Promise<string> {
  const origin = { ...ORIGINS[person], channelId: unique("stop") };
  const id = newId("msg");
  const conversationId = await quietConversation(person, origin);
  await api.gw.services.conversations.putMessage({
    id,
    conversationId,
    agentId: "default",
    origin,
    text: "done already",
    status: "done",
    createdAt: Date.now(),
  });
  return id;
}

/** A conversation of `person` with nothing running or queued. */
async function quietConversation(
  person: Person,
  origin: Origin = { ...ORIGINS[person], channelId: unique("stop") },
): Promise<string> {
  const id = await api.gw.services.inbound.conversationOf({ agentId: "default", origin });
  const key = {
    agentId: "default",
    platform: origin.platform,
    workspace: origin.workspace ?? "",
    userId: origin.userId,
    channelId: origin.channelId,
  };
  await api.gw.services.conversations.touchConversation(id, key, origin);
  return id;
}
