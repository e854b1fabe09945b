import {
  type CollectedSpan,
  collectEvents,
  type GatewayProcess,
  type MockLlm,
  type OtlpCollector,
  startGatewayProcess,
  startMockLlm,
  startOtlpCollector,
} from "@lobu/testkit";
import { type McpServerEmulator, startMcpServer } from "@lobu/testkit/mcp";
import { afterAll, beforeAll, expect, it } from "vitest";

/**
 * One turn, one trace: the webhook's HTTP span → inbound → queue → turn →
 * worker → model relay, egress proxy decision and MCP call (with the trace
 * context passed on to the MCP server), all exported by the real OTLP/HTTP
 * exporters to the collector emulator; and the metrics of that turn.
 */

let llm: MockLlm;
let collector: OtlpCollector;
let mcp: McpServerEmulator;
let gw: GatewayProcess;

beforeAll(async () => {
  llm = await startMockLlm();
  collector = await startOtlpCollector();
  mcp = await startMcpServer({ apiKey: "team-key-0123456789" });
  gw = await startGatewayProcess({
    toml: [
      "[telemetry]",
      `otlp_endpoint = "${collector.url}"`,
      "[network]",
      'allow_private_ranges = ["127.0.0.0/8"]',
      "[mcp.notes]",
      `url = "${mcp.url}"`,
      'policy = "allow"',
      'headers = { "x-api-key" = "team-key-0123456789" }',
      "[skills.notes]",
      'description = "notes"',
      'mcp = ["notes"]',
      "[agents.default]",
      'skills = ["notes"]',
      "[prices]",
      '"anthropic/claude-sonnet-4-5" = { input = 3.0, output = 15.0 }',
      "",
    ].join("\n"),
    env: {
      ANTHROPIC_API_KEY: "k",
      ANTHROPIC_BASE_URL: llm.url,
      OTEL_METRIC_EXPORT_INTERVAL: "300",
    },
  });
});

afterAll(async () => {
  await gw?.stop();
  await mcp?.close();
  await collector?.close();
  await llm?.close();
});

const TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const FORGED = "00-11111111111111111111111111111111-2222222222222222-01";

it("one trace covers every hop of a turn, with correct parent links", async () => {
  llm.when(
    (r) => r.lastUserText === "every hop",
    { toolCalls: [{ name: "mcp__notes__whoami", input: {} }] },
    {
      toolCalls: [
        { name: "bash", input: { command: "curl -s --max-time 5 http://blocked.invalid/; echo" } },
      ],
    },
    { text: "all hops done" },
  );
  const res = await gw.api("/api/v1/agents/default/messages", {
    method: "POST",
    headers: { accept: "text/event-stream", traceparent: TRACEPARENT },
    body: JSON.stringify({ user: "olive", text: "every hop" }),
  });
  const messageId = res.headers.get("x-lobu-message-id")!;
  const events = await collectEvents(res);
  expect(events.at(-1)).toMatchObject({ type: "done", text: "all hops done" });

  const traceId = TRACEPARENT.split("-")[1]!;
  const inTrace = (name: string) =>
    collector.waitForSpan((s) => s.traceId === traceId && s.name === name);
  const http = await inTrace("POST /api/v1/agents/:agentId/messages");
  const inbound = await inTrace("lobu.inbound");
  const queue = await inTrace("lobu.queue");
  const turn = await inTrace("lobu.turn");
  const worker = await inTrace("lobu.worker");
  const relay = await inTrace("lobu.relay");
  const egress = await inTrace("lobu.egress");
  const tool = await inTrace("lobu.gateway_tool");
  const call = await inTrace("lobu.mcp.call");
  const parentOf = (child: CollectedSpan, parent: CollectedSpan) =>
    expect({ child: child.name, parent: child.parentSpanId }).toEqual({
      child: child.name,
      parent: parent.spanId,
    });
  // The caller's span is the webhook span's parent: the trace continues the caller's.
  expect(http.parentSpanId).toBe(TRACEPARENT.split("-")[2]);
  parentOf(inbound, http);
  parentOf(queue, inbound);
  parentOf(turn, queue);
  parentOf(worker, turn);
  parentOf(relay, worker);
  parentOf(egress, worker);
  parentOf(tool, worker);
  parentOf(call, tool);
  expect(turn.attributes["lobu.message"]).toBe(messageId);
  expect(egress.attributes).toMatchObject({
    "lobu.decision": "denied",
    "server.address": "blocked.invalid",
  });
  expect(call.attributes).toMatchObject({ "lobu.mcp.server": "notes", "lobu.mcp.tool": "whoami" });
  // The MCP server got the call's trace context (W3C traceparent), so its spans can join.
  expect(mcp.traceparents).toContain(`00-${traceId}-${call.spanId}-01`);
  // The provider never sees the gateway's trace context.
  const calls = llm.requests.filter((r) => r.lastUserText === "every hop");
  expect(calls.length).toBeGreaterThanOrEqual(3);
  for (const r of calls) {
    expect(r.headers.traceparent).toBeUndefined();
    expect(r.headers.tracestate).toBeUndefined();
  }
});

it("the metrics move: turns, latency, queue, sandboxes, wake, egress, tokens, cost, errors", async () => {
  const turns = await collector.waitForPoint("lobu.turns", {
    attributes: { "lobu.agent": "default", "lobu.result": "done" },
  });
  expect(turns.value).toBeGreaterThanOrEqual(1);
  const duration = await collector.waitForPoint("lobu.turn.duration");
  expect(duration.count).toBeGreaterThanOrEqual(1);
  expect((await collector.waitForPoint("lobu.queue.wait")).count).toBeGreaterThanOrEqual(1);
  expect((await collector.waitForPoint("lobu.sandbox.wake.duration")).count).toBe(1);
  expect((await collector.waitForPoint("lobu.queue.depth")).kind).toBe("gauge");
  const live = await collector.waitForPoint("lobu.sandboxes", {
    attributes: { "lobu.state": "idle" },
  });
  expect(live.value).toBe(1);
  const denied = await collector.waitForPoint("lobu.egress.decisions", {
    attributes: { "lobu.decision": "denied" },
  });
  expect(denied.value).toBeGreaterThanOrEqual(1);
  const input = await collector.waitForPoint("lobu.llm.tokens", {
    attributes: { "lobu.token.type": "input" },
  });
  expect(input.value).toBeGreaterThan(0);
  expect((await collector.waitForPoint("lobu.llm.cost")).value).toBeGreaterThan(0);

  // A failing turn moves the errors counter by its code.
  llm.when((r) => r.lastUserText === "fail please", { error: { status: 400, message: "no" } });
  const res = await gw.api("/api/v1/agents/default/messages", {
    method: "POST",
    headers: { accept: "text/event-stream" },
    body: JSON.stringify({ user: "olive", text: "fail please" }),
  });
  const events = await collectEvents(res);
  const error = events.at(-1) as { type: string; code?: string };
  expect(error.type).toBe("error");
  const errors = await collector.waitForPoint("lobu.errors", {
    attributes: { "error.type": error.code! },
  });
  expect(errors.value).toBeGreaterThanOrEqual(1);
});

it("a sandbox cannot hang its spans on another trace", async () => {
  // The worker's model call claims a foreign trace: the relay span stays in the turn's own trace.
  const { turnParent, contextOf } = await import("../../src/telemetry/otel.ts");
  const { trace } = await import("@opentelemetry/api");
  const own = "00-0af7651916cd43dd8448eb211c80319c-aaaaaaaaaaaaaaaa-01";
  const sameTrace = "00-0af7651916cd43dd8448eb211c80319c-bbbbbbbbbbbbbbbb-01";
  const spanOf = (tp: string | undefined) => trace.getSpanContext(turnParent(own, tp))?.spanId;
  expect(spanOf(sameTrace)).toBe("bbbbbbbbbbbbbbbb");
  expect(spanOf(FORGED)).toBe("aaaaaaaaaaaaaaaa");
  expect(spanOf("garbage")).toBe("aaaaaaaaaaaaaaaa");
  expect(spanOf(undefined)).toBe("aaaaaaaaaaaaaaaa");
  expect(trace.getSpanContext(contextOf("00-zz-yy-01"))).toBeUndefined();
});
