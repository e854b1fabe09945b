import { LobuError, newId } from "@lobu/core";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import { withEffectiveModels } from "../agents/effective.ts";
import { checkAgentInput } from "../agents/references.ts";
import { AgentInput, AgentPatch } from "../agents/registry.ts";
import { jsonBody } from "../http/errors.ts";
import { streamMessageEvents } from "../http/sse.ts";
import type { Origin } from "../platforms/adapter.ts";
import { providerSecretName } from "../providers/registry.ts";
import { answerRequest } from "../runtime/answers.ts";
import type { GatewayServices } from "../services.ts";
import { parseStreamId } from "../store/shared.ts";
import { type ApiEnv, requireAdmin, requireToken } from "./auth.ts";
import { sandboxRoutes } from "./sandboxes.ts";

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

function apiOrigin(body: z.infer<typeof SendMessage>): Origin {
  return {
    platform: "api",
    workspace: "",
    channelId: body.channel,
    userId: body.user,
    userName: body.userName,
    isDirect: true,
  };
}

function wantsStream(accept: string | undefined, query: string | undefined): boolean {
  return query === "true" || query === "1" || (accept ?? "").includes("text/event-stream");
}

/** The REST API (`/api/v1`). See docs/openapi.yaml. */
export function apiRoutes(s: GatewayServices, maxBodyBytes: number): Hono<ApiEnv> {
  const api = new Hono<ApiEnv>();
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

  api.get("/info", (c) =>
    c.json({
      version: "0.1.0",
      instanceId: s.instanceId,
      store: s.store.kind,
      sandboxDriver: s.sandboxes.driverName,
      publicUrl: s.publicUrl,
    }),
  );

  // Agents
  api.get("/agents", async (c) =>
    c.json({ agents: await withEffectiveModels(await s.agents.list(), s.contexts) }),
  );
  api.post("/agents", async (c) => {
    requireAdmin(c.get("token"));
    const input = await jsonBody(c, AgentInput);
    checkAgentInput(input, s.providers, s.skills);
    const agent = await s.agents.create(input);
    s.audit.record({
      action: "agent.created",
      actor: `api:${c.get("token").id}`,
      agentId: agent.id,
    });
    return c.json(agent, 201);
  });
  api.get("/agents/:agentId", async (c) => c.json(await s.agents.require(c.req.param("agentId"))));
  api.patch("/agents/:agentId", async (c) => {
    requireAdmin(c.get("token"));
    const patch = await jsonBody(c, AgentPatch);
    checkAgentInput(patch, s.providers, s.skills);
    const agent = await s.agents.update(c.req.param("agentId"), patch);
    s.audit.record({
      action: "agent.updated",
      actor: `api:${c.get("token").id}`,
      agentId: agent.id,
    });
    return c.json(agent);
  });
  api.delete("/agents/:agentId", async (c) => {
    requireAdmin(c.get("token"));
    await s.agents.delete(c.req.param("agentId"));
    s.audit.record({
      action: "agent.deleted",
      actor: `api:${c.get("token").id}`,
      agentId: c.req.param("agentId"),
    });
    return c.body(null, 204);
  });

  // Agent secrets (per-agent provider keys and other credentials); values are write-only.
  api.get("/agents/:agentId/secrets", async (c) => {
    requireAdmin(c.get("token"));
    const agentId = (await s.agents.require(c.req.param("agentId"))).id;
    return c.json({ secrets: await s.secrets.list({ kind: "agent", agentId }) });
  });
  api.put("/agents/:agentId/secrets/:name", async (c) => {
    requireAdmin(c.get("token"));
    const agentId = (await s.agents.require(c.req.param("agentId"))).id;
    const name = c.req.param("name");
    const { value } = await jsonBody(c, SecretValue);
    const meta = await s.secrets.set({ scope: { kind: "agent", agentId }, name }, value);
    s.audit.record({
      action: "secret.set",
      actor: `api:${c.get("token").id}`,
      agentId,
      details: { name },
    });
    return c.json(meta);
  });
  api.delete("/agents/:agentId/secrets/:name", async (c) => {
    requireAdmin(c.get("token"));
    const agentId = (await s.agents.require(c.req.param("agentId"))).id;
    const name = c.req.param("name");
    const existed = await s.secrets.delete({ scope: { kind: "agent", agentId }, name });
    if (!existed)
      throw new LobuError("not_found", `no secret "${name}" on agent ${agentId}`, { status: 404 });
    s.audit.record({
      action: "secret.deleted",
      actor: `api:${c.get("token").id}`,
      agentId,
      details: { name },
    });
    return c.body(null, 204);
  });

  // Installation-wide secrets (provider keys for everyone, shared credentials).
  api.get("/secrets", async (c) => {
    requireAdmin(c.get("token"));
    return c.json({ secrets: await s.secrets.list({ kind: "installation" }) });
  });
  api.put("/secrets/:name", async (c) => {
    requireAdmin(c.get("token"));
    const name = c.req.param("name");
    const { value } = await jsonBody(c, SecretValue);
    const meta = await s.secrets.set({ scope: { kind: "installation" }, name }, value);
    s.audit.record({
      action: "secret.set",
      actor: `api:${c.get("token").id}`,
      details: { name, scope: "installation" },
    });
    return c.json(meta);
  });
  api.delete("/secrets/:name", async (c) => {
    requireAdmin(c.get("token"));
    const name = c.req.param("name");
    if (!(await s.secrets.delete({ scope: { kind: "installation" }, name }))) {
      throw new LobuError("not_found", `no installation secret "${name}"`, { status: 404 });
    }
    s.audit.record({
      action: "secret.deleted",
      actor: `api:${c.get("token").id}`,
      details: { name, scope: "installation" },
    });
    return c.body(null, 204);
  });

  // Providers
  api.get("/providers", async (c) => {
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
  });

  // Messages
  api.post("/agents/:agentId/messages", async (c) => {
    const agentId = c.req.param("agentId");
    const body = await jsonBody(c, SendMessage);
    const idempotencyKey = c.req.header("idempotency-key");
    if (
      idempotencyKey !== undefined &&
      (idempotencyKey.length === 0 || idempotencyKey.length > 200)
    ) {
      throw new LobuError("invalid_request", "Idempotency-Key must be 1 to 200 characters");
    }
    const result = await s.inbound.submit({
      agentId,
      origin: apiOrigin(body),
      text: body.text,
      eventId: idempotencyKey ? `idem:${c.get("token").id}:${idempotencyKey}` : newId("evt"),
    });
    const messageId = result.messageId!;
    if (wantsStream(c.req.header("accept"), c.req.query("stream"))) {
      c.header("x-lobu-message-id", messageId);
      c.header("x-lobu-conversation-id", result.conversationId ?? "");
      return streamMessageEvents(c, s.conversations, messageId);
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
  });
  api.get("/messages/:messageId", async (c) => {
    const rec = await s.conversations.getMessage(c.req.param("messageId"));
    if (!rec) throw new LobuError("not_found", "no such message", { status: 404 });
    return c.json(rec);
  });
  api.get("/messages/:messageId/events", async (c) => {
    const messageId = c.req.param("messageId");
    if (!(await s.conversations.getMessage(messageId))) {
      throw new LobuError("not_found", "no such message", { status: 404 });
    }
    const after = c.req.header("last-event-id") ?? c.req.query("after");
    // Check the cursor before the stream starts: afterwards an error can't be a 400.
    if (after) parseStreamId(after);
    return streamMessageEvents(c, s.conversations, messageId, after);
  });

  // Conversations
  api.get("/agents/:agentId/conversations", async (c) => {
    const agentId = (await s.agents.require(c.req.param("agentId"))).id;
    const conversations = await s.conversations.listConversations(agentId, {
      userId: c.req.query("user"),
      limit: Math.min(Number(c.req.query("limit") ?? 100) || 100, 1000),
    });
    return c.json({ conversations });
  });
  api.get("/conversations/:conversationId/messages", async (c) => {
    const id = c.req.param("conversationId");
    if (!(await s.conversations.getConversation(id))) {
      throw new LobuError("not_found", "no such conversation", { status: 404 });
    }
    const messages = await s.conversations.history(id, {
      after: c.req.query("after"),
      limit: Math.min(Number(c.req.query("limit") ?? 200) || 200, 1000),
    });
    return c.json({ messages });
  });

  // Answers to questions, approvals and capability requests (REST channel).
  api.post("/requests/:requestId/answer", async (c) => {
    const answer = await jsonBody(c, Answer);
    const token = c.get("token");
    const result = await answerRequest(s, c.req.param("requestId"), answer, {
      admin: true,
      label: `api:${token.name}`,
      actor: `api:${token.id}`,
    });
    if (!result.ok)
      throw new LobuError("request_not_answerable", result.reason, { status: result.status });
    return c.json({ ok: true, request: result.request });
  });

  // Sandboxes (operator controls)
  api.route("/sandboxes", sandboxRoutes(s));

  // Tokens
  api.get("/tokens", async (c) => {
    requireAdmin(c.get("token"));
    return c.json({ tokens: await s.tokens.list() });
  });
  api.post("/tokens", async (c) => {
    requireAdmin(c.get("token"));
    const body = await jsonBody(
      c,
      z.strictObject({ name: z.string().min(1).max(100), role: z.enum(["admin", "client"]) }),
    );
    const created = await s.tokens.create(body.name, body.role);
    s.audit.record({
      action: "token.created",
      actor: `api:${c.get("token").id}`,
      details: { id: created.info.id, role: body.role },
    });
    return c.json({ token: created.token, ...created.info }, 201);
  });
  api.delete("/tokens/:id", async (c) => {
    requireAdmin(c.get("token"));
    if (!(await s.tokens.revoke(c.req.param("id"))))
      throw new LobuError("not_found", "no such token", { status: 404 });
    return c.body(null, 204);
  });

  // Audit and usage
  api.get("/audit", async (c) => {
    requireAdmin(c.get("token"));
    return c.json({
      records: await s.audit.recent({
        limit: Math.min(Number(c.req.query("limit") ?? 100) || 100, 1000),
        action: c.req.query("action"),
      }),
    });
  });
  api.get("/usage", async (c) => {
    requireAdmin(c.get("token"));
    const since = c.req.query("since");
    if (since !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(since)) {
      throw new LobuError(
        "invalid_request",
        `since must be a date like 2026-01-31, got "${since}"`,
      );
    }
    return c.json({ usage: await s.audit.usageTotals(since) });
  });

  return api;
}
