import { type LobuConfig, LobuError, newId } from "@lobu/core";
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import { type ApiEnv, requireToken } from "../access/auth.ts";
import { assertEveryRouteGuarded, endpoint } from "../access/endpoint.ts";
import {
  answererFor,
  apiOrigin,
  authorizeFor,
  authorizeToken,
  bindingFor,
  inScope,
  NAMESPACE_PATTERN,
  namespaceOf,
  tokenInScope,
} from "../access/permissions.ts";
import { TOKEN_ROLES, type TokenStore } from "../access/tokens.ts";
import type { TurnContextBuilder } from "../agents/context.ts";
import { withEffectiveModels } from "../agents/effective.ts";
import { checkAgentInput } from "../agents/references.ts";
import { AgentInput, AgentPatch, type AgentRegistry } from "../agents/registry.ts";
import type { AuditLog } from "../audit/log.ts";
import type { Inbound } from "../conversations/inbound.ts";
import type { Conversations } from "../conversations/records.ts";
import { jsonBody } from "../http/errors.ts";
import { cursorParam, dayParam, enumParam, limitParam, textParam } from "../http/query.ts";
import { streamMessageEvents } from "../http/sse.ts";
import { clientAddress, StreamSlots } from "../http/stream-slots.ts";
import { type ProviderRegistry, providerSecretName } from "../providers/registry.ts";
import type { AnswerRequest } from "../runtime/answers.ts";
import type { RequestRegistry } from "../runtime/requests.ts";
import type { SecretStore } from "../secrets/store.ts";
import type { SkillCatalog } from "../skills/catalog.ts";
import type { Store } from "../store/port.ts";
import { type UsageReportDeps, usageSummary } from "../usage/report.ts";
import { type SandboxRouteDeps, sandboxRoutes } from "./sandboxes.ts";

const SendMessage = z.strictObject({
  /** The end user this message is from (any stable id in your system). */
  user: z.string().min(1).max(200),
  /** Conversation channel; one sandbox per (agent, user, channel). */
  channel: z.string().min(1).max(200).default("default"),
  text: z.string(),
  userName: z.string().max(200).optional(),
});

const SecretValue = z.strictObject({ value: z.string().min(1).max(16_384) });
const Answer = z.strictObject({
  choice: z.string().max(64).optional(),
  text: z.string().max(4000).optional(),
});
const TokenRequest = z.strictObject({
  name: z.string().min(1).max(100),
  role: z.enum(TOKEN_ROLES),
  /** client: the namespace of api users it acts for (default: its own); user: its user's. */
  namespace: z
    .string()
    .regex(NAMESPACE_PATTERN, "lower-case letters, digits, - and _ (at most 63)")
    .optional(),
  /** user tokens: the one api user it acts for. */
  user: z.string().min(1).max(200).optional(),
  expiresInSec: z
    .number()
    .int()
    .min(60)
    .max(10 * 365 * 86_400)
    .optional(),
});

/** `?stream=` of POST …/messages: an explicit choice over the Accept header. */
const STREAM_FLAG = enumParam(["true", "false", "1", "0"], undefined);

function wantsStream(accept: string | undefined, flag: string | undefined): boolean {
  if (flag !== undefined) return flag === "true" || flag === "1";
  return (accept ?? "").includes("text/event-stream");
}

/** What the REST API uses. */
export interface ApiDeps extends SandboxRouteDeps {
  config: LobuConfig;
  instanceId: string;
  /** Read while handling a request (the gateway listens by then). */
  readonly publicUrl: string;
  store: Pick<Store, "kind">;
  tokens: TokenStore;
  agents: AgentRegistry;
  /** The model each agent runs on (agent listing). */
  contexts: TurnContextBuilder;
  providers: ProviderRegistry;
  skills: SkillCatalog;
  secrets: SecretStore;
  inbound: Pick<Inbound, "submit">;
  conversations: Conversations;
  requests: Pick<RequestRegistry, "get">;
  audit: AuditLog;
  answer: AnswerRequest;
  usage: UsageReportDeps;
}

/**
 * The REST API (`/api/v1`). See docs/openapi.yaml. Every route is an
 * `endpoint()`: the roles-matrix action it needs (permissions.ts) and the
 * query parameters it takes.
 */
export function apiRoutes(s: ApiDeps, maxBodyBytes: number): Hono<ApiEnv> {
  const api = new Hono<ApiEnv>();
  const slots = new StreamSlots({
    perToken: s.config.gateway.max_streams_per_token,
    perAddress: s.config.gateway.max_streams_per_address,
  });
  const holder = (c: Context<ApiEnv>) => ({
    tokenId: c.get("token").id,
    address: clientAddress(c),
  });
  api.use(
    "*",
    bodyLimit({
      maxSize: maxBodyBytes,
      onError: () => {
        throw new LobuError("payload_too_large", `request body exceeds ${maxBodyBytes} bytes`, {
          status: 413,
        });
      },
    }),
  );
  api.use("*", requireToken(s.tokens));
  const actor = (c: Context<ApiEnv>) => `api:${c.get("token").id}`;

  api.get(
    "/info",
    endpoint("info.read", {}, (c, { token }) =>
      c.json({
        version: "0.1.0",
        instanceId: s.instanceId,
        store: s.store.kind,
        sandboxDriver: s.sandboxes.driverName,
        publicUrl: s.publicUrl,
        // Who the caller is, for whom it acts, and its share of the stream caps.
        caller: {
          role: token.role,
          ...(token.role !== "admin" ? { namespace: namespaceOf(token) } : {}),
          ...(token.user !== undefined ? { user: token.user } : {}),
          ...(token.expiresAt !== undefined ? { expiresAt: token.expiresAt } : {}),
          streams: slots.count(holder(c)),
          streamLimits: {
            perToken: s.config.gateway.max_streams_per_token,
            perAddress: s.config.gateway.max_streams_per_address,
          },
        },
      }),
    ),
  );

  // Agents
  api.get(
    "/agents",
    endpoint("agents.read", {}, async (c) =>
      c.json({ agents: await withEffectiveModels(await s.agents.list(), s.contexts) }),
    ),
  );
  api.post(
    "/agents",
    endpoint("agents.manage", {}, async (c) => {
      const input = await jsonBody(c, AgentInput);
      checkAgentInput(input, s.providers, s.skills, s.config.network.allow_public_suffixes);
      const agent = await s.agents.create(input);
      s.audit.record({ action: "agent.created", actor: actor(c), agentId: agent.id });
      return c.json(agent, 201);
    }),
  );
  api.get(
    "/agents/:agentId",
    endpoint("agents.read", {}, async (c) =>
      c.json(await s.agents.require(c.req.param("agentId") ?? "")),
    ),
  );
  api.patch(
    "/agents/:agentId",
    endpoint("agents.manage", {}, async (c) => {
      const patch = await jsonBody(c, AgentPatch);
      checkAgentInput(patch, s.providers, s.skills, s.config.network.allow_public_suffixes);
      const agent = await s.agents.update(c.req.param("agentId") ?? "", patch);
      s.audit.record({ action: "agent.updated", actor: actor(c), agentId: agent.id });
      return c.json(agent);
    }),
  );
  api.delete(
    "/agents/:agentId",
    endpoint("agents.manage", {}, async (c) => {
      const agentId = c.req.param("agentId") ?? "";
      await s.agents.delete(agentId);
      s.audit.record({ action: "agent.deleted", actor: actor(c), agentId });
      return c.body(null, 204);
    }),
  );

  // Agent secrets (per-agent provider keys and other credentials); values are write-only.
  api.get(
    "/agents/:agentId/secrets",
    endpoint("secrets.manage", {}, async (c) => {
      const agentId = (await s.agents.require(c.req.param("agentId") ?? "")).id;
      return c.json({ secrets: await s.secrets.list({ kind: "agent", agentId }) });
    }),
  );
  api.put(
    "/agents/:agentId/secrets/:name",
    endpoint("secrets.manage", {}, async (c) => {
      const agentId = (await s.agents.require(c.req.param("agentId") ?? "")).id;
      const name = c.req.param("name") ?? "";
      const { value } = await jsonBody(c, SecretValue);
      const meta = await s.secrets.set({ scope: { kind: "agent", agentId }, name }, value);
      s.audit.record({ action: "secret.set", actor: actor(c), agentId, details: { name } });
      return c.json(meta);
    }),
  );
  api.delete(
    "/agents/:agentId/secrets/:name",
    endpoint("secrets.manage", {}, async (c) => {
      const agentId = (await s.agents.require(c.req.param("agentId") ?? "")).id;
      const name = c.req.param("name") ?? "";
      const existed = await s.secrets.delete({ scope: { kind: "agent", agentId }, name });
      if (!existed)
        throw new LobuError("not_found", `no secret "${name}" on agent ${agentId}`, {
          status: 404,
        });
      s.audit.record({ action: "secret.deleted", actor: actor(c), agentId, details: { name } });
      return c.body(null, 204);
    }),
  );

  // Installation-wide secrets (provider keys for everyone, shared credentials).
  api.get(
    "/secrets",
    endpoint("secrets.manage", {}, async (c) =>
      c.json({ secrets: await s.secrets.list({ kind: "installation" }) }),
    ),
  );
  api.put(
    "/secrets/:name",
    endpoint("secrets.manage", {}, async (c) => {
      const name = c.req.param("name") ?? "";
      const { value } = await jsonBody(c, SecretValue);
      const meta = await s.secrets.set({ scope: { kind: "installation" }, name }, value);
      s.audit.record({
        action: "secret.set",
        actor: actor(c),
        details: { name, scope: "installation" },
      });
      return c.json(meta);
    }),
  );
  api.delete(
    "/secrets/:name",
    endpoint("secrets.manage", {}, async (c) => {
      const name = c.req.param("name") ?? "";
      if (!(await s.secrets.delete({ scope: { kind: "installation" }, name }))) {
        throw new LobuError("not_found", `no installation secret "${name}"`, { status: 404 });
      }
      s.audit.record({
        action: "secret.deleted",
        actor: actor(c),
        details: { name, scope: "installation" },
      });
      return c.body(null, 204);
    }),
  );

  // Providers
  api.get(
    "/providers",
    endpoint("providers.read", {}, async (c) => {
      const providers = await Promise.all(
        s.providers.list().map(async (p) => ({
          id: p.id,
          type: p.type,
          baseUrl: p.baseUrl,
          defaultModel: p.defaultModel,
          installationKey:
            (await s.secrets.meta({
              scope: { kind: "installation" },
              name: providerSecretName(p.id),
            })) !== null,
        })),
      );
      return c.json({ providers });
    }),
  );

  // Messages
  api.post(
    "/agents/:agentId/messages",
    endpoint("messages.send", { stream: STREAM_FLAG }, async (c, { token, query }) => {
      const agentId = c.req.param("agentId") ?? "";
      const body = await jsonBody(c, SendMessage);
      // Client and user tokens speak only for people in their namespace (permissions.ts).
      const origin = apiOrigin(token, body);
      const idempotencyKey = c.req.header("idempotency-key");
      if (
        idempotencyKey !== undefined &&
        (idempotencyKey.length === 0 || idempotencyKey.length > 200)
      ) {
        throw new LobuError("invalid_request", "Idempotency-Key must be 1 to 200 characters");
      }
      const stream = wantsStream(c.req.header("accept"), query.stream);
      // Take the stream slot first: over the cap, nothing is queued (429, retry later).
      const release = stream ? slots.acquire(holder(c)) : undefined;
      let result: Awaited<ReturnType<typeof s.inbound.submit>>;
      try {
        result = await s.inbound.submit({
          agentId,
          origin,
          text: body.text,
          eventId: idempotencyKey ? `idem:${token.id}:${idempotencyKey}` : newId("evt"),
        });
      } catch (err) {
        release?.();
        throw err;
      }
      const messageId = result.messageId!;
      if (release) {
        c.header("x-lobu-message-id", messageId);
        c.header("x-lobu-conversation-id", result.conversationId ?? "");
        return streamMessageEvents(c, s.conversations, messageId, { onClose: release });
      }
      return c.json(
        {
          messageId,
          conversationId: result.conversationId,
          duplicate: result.duplicate,
          status: "queued",
          eventsUrl: `/api/v1/messages/${messageId}/events`,
        },
        202,
      );
    }),
  );
  /** The message, if `token` may read it (404 unknown, 403 someone else's). */
  const readableMessage = async (c: Context<ApiEnv>, messageId: string) => {
    const rec = await s.conversations.getMessage(messageId);
    if (!rec) throw new LobuError("not_found", "no such message", { status: 404 });
    authorizeFor(c.get("token"), "messages.read", rec.origin, `message ${messageId}`);
    return rec;
  };
  api.get(
    "/messages/:messageId",
    endpoint("messages.read", {}, async (c) =>
      c.json(await readableMessage(c, c.req.param("messageId") ?? "")),
    ),
  );
  api.get(
    "/messages/:messageId/events",
    endpoint("messages.read", { after: cursorParam() }, async (c, { query }) => {
      const messageId = c.req.param("messageId") ?? "";
      await readableMessage(c, messageId);
      // Check the cursor before the stream starts: afterwards an error can't be a 400.
      const header = c.req.header("last-event-id");
      if (header !== undefined && cursorParam().parse(header) === undefined)
        // The code clients already know for a bad cursor (the store's).
        throw new LobuError(
          "store_invalid_cursor",
          `Last-Event-ID "${header.slice(0, 80)}" is not valid`,
          {
            status: 400,
            hint: `Last-Event-ID must be ${cursorParam().expected}: the id of the last event you received.`,
          },
        );
      const release = slots.acquire(holder(c));
      return streamMessageEvents(c, s.conversations, messageId, {
        after: header ?? query.after,
        onClose: release,
      });
    }),
  );

  // Conversations
  api.get(
    "/agents/:agentId/conversations",
    endpoint(
      "conversations.read",
      { user: textParam(200), limit: limitParam(100) },
      async (c, { token, access, query }) => {
        const agentId = (await s.agents.require(c.req.param("agentId") ?? "")).id;
        const all = await s.conversations.listConversations(agentId, {
          ...(query.user !== undefined ? { userId: query.user } : {}),
          limit: Number.POSITIVE_INFINITY,
        });
        // `own`: only the conversations of the token's people, on the api platform.
        const conversations = (
          access === "all" ? all : all.filter((r) => inScope(token, r.key))
        ).slice(0, query.limit);
        return c.json({ conversations });
      },
    ),
  );
  api.get(
    "/conversations/:conversationId/messages",
    endpoint(
      "conversations.read",
      { after: cursorParam(), limit: limitParam(200) },
      async (c, { token, query }) => {
        const id = c.req.param("conversationId") ?? "";
        const conversation = await s.conversations.getConversation(id);
        if (!conversation)
          throw new LobuError("not_found", "no such conversation", { status: 404 });
        authorizeFor(token, "conversations.read", conversation.key, `conversation ${id}`);
        const messages = await s.conversations.history(id, {
          ...(query.after !== undefined ? { after: query.after } : {}),
          limit: query.limit,
        });
        return c.json({ messages });
      },
    ),
  );

  // Answers to questions, approvals and capability requests (REST channel).
  api.post(
    "/requests/:requestId/answer",
    endpoint("requests.answer", {}, async (c, { token }) => {
      const requestId = c.req.param("requestId") ?? "";
      const answer = await jsonBody(c, Answer);
      const request = await s.requests.get(requestId);
      if (!request)
        throw new LobuError("request_not_answerable", "unknown or expired request", {
          status: 404,
        });
      authorizeFor(token, "requests.answer", request.origin, `request ${requestId}`);
      // Admin tokens answer as the operator; others as the person whose request it is.
      const result = await s.answer(requestId, answer, answererFor(token, request));
      if (!result.ok)
        throw new LobuError("request_not_answerable", result.reason, { status: result.status });
      return c.json({ ok: true, request: result.request });
    }),
  );

  // Sandboxes (operator controls)
  api.route("/sandboxes", sandboxRoutes(s));

  // Tokens
  api.get(
    "/tokens",
    endpoint("tokens.read", {}, async (c, { token, access }) => {
      const tokens = await s.tokens.list();
      return c.json({
        tokens: access === "all" ? tokens : tokens.filter((t) => tokenInScope(token, t)),
      });
    }),
  );
  api.post(
    "/tokens",
    endpoint("tokens.create", {}, async (c, { token }) => {
      const body = await jsonBody(c, TokenRequest);
      const created = await s.tokens.create(body.name, body.role, bindingFor(token, body));
      s.audit.record({
        action: "token.created",
        actor: actor(c),
        details: {
          id: created.info.id,
          role: body.role,
          ...(created.info.namespace !== undefined ? { namespace: created.info.namespace } : {}),
          ...(created.info.user !== undefined ? { user: created.info.user } : {}),
        },
      });
      return c.json({ token: created.token, ...created.info }, 201);
    }),
  );
  api.delete(
    "/tokens/:id",
    endpoint("tokens.revoke", {}, async (c, { token }) => {
      const id = c.req.param("id") ?? "";
      const other = await s.tokens.get(id);
      if (!other) throw new LobuError("not_found", "no such token", { status: 404 });
      authorizeToken(token, "tokens.revoke", other);
      await s.tokens.revoke(id);
      s.audit.record({ action: "token.revoked", actor: actor(c), details: { id } });
      return c.body(null, 204);
    }),
  );

  // Audit and usage
  api.get(
    "/audit",
    endpoint(
      "audit.read",
      { limit: limitParam(100), action: textParam(100) },
      async (c, { query }) =>
        c.json({
          records: await s.audit.recent({
            limit: query.limit,
            ...(query.action !== undefined ? { action: query.action } : {}),
          }),
        }),
    ),
  );
  api.get(
    "/usage",
    endpoint("usage.read", { since: dayParam() }, async (c, { query }) => {
      // `usage` is the daily rows (its name since v1); the rest as in the admin UI's report.
      const { daily, ...report } = await usageSummary(s.usage, query.since);
      return c.json({ usage: daily, ...report });
    }),
  );

  assertEveryRouteGuarded(api);
  return api;
}
