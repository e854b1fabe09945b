import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createLogger, LobuConfig } from "@lobu/core";
import { type Gateway, startGateway } from "@lobu/gateway";
import {
  collectEvents,
  type MockLlm,
  type OtlpCollector,
  removeDataDir,
  startMockLlm,
  startOtlpCollector,
} from "@lobu/testkit";
import { afterAll, beforeAll, expect, it } from "vitest";

/**
 * A worker that lies about its trace context: its gateway tool calls name
 * another trace, or an invalid one. The gateway's
 * spans for the calls stay in the running turn's trace; a foreign trace id
 * gets nothing. The worker is the hostile fixture speaking the protocol.
 */

const RAW_WORKER = resolve(import.meta.dirname, "fixtures/raw-worker.ts");
const FOREIGN_TRACE = "11111111111111111111111111111111";
const FORGED = `00-${FOREIGN_TRACE}-2222222222222222-01`;

let llm: MockLlm;
let collector: OtlpCollector;
let gw: Gateway;
let dataDir: string;
let token: string;

beforeAll(async () => {
  llm = await startMockLlm();
  collector = await startOtlpCollector();
  dataDir = mkdtempSync(join(tmpdir(), "lobu-trace-forgery-"));
  gw = await startGateway({
    config: LobuConfig.parse({
      sandbox: { driver: "host", allow_unsandboxed: true, idle_timeout: "10m" },
      telemetry: { otlp_endpoint: collector.url },
    }),
    dataDir,
    port: 0,
    env: { ANTHROPIC_API_KEY: "k", ANTHROPIC_BASE_URL: llm.url },
    log: createLogger("test", { level: "silent" }),
    worker: { entry: RAW_WORKER },
  });
  token = readFileSync(gw.summary.adminTokenFile, "utf8").trim();
});

afterAll(async () => {
  await gw?.close();
  await collector?.close();
  await llm?.close();
  if (dataDir) removeDataDir(dataDir);
});

it("gateway tool spans stay in the running turn's trace, whatever trace the worker names", async () => {
  const script = {
    calls: [
      { tool: "list_schedules", input: {}, extra: { traceparent: FORGED } },
      // Well-formed, but the all-zero trace id W3C calls invalid.
      {
        tool: "list_schedules",
        input: {},
        extra: { traceparent: `00-${"0".repeat(32)}-${"3".repeat(16)}-01` },
      },
    ],
  };
  const res = await fetch(`${gw.url}/api/v1/agents/default/messages`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      accept: "text/event-stream",
    },
    body: JSON.stringify({ user: "mallory", text: JSON.stringify(script) }),
  });
  const messageId = res.headers.get("x-lobu-message-id")!;
  await collectEvents(res);
  const turn = await collector.waitForSpan(
    (s) => s.name === "lobu.turn" && s.attributes["lobu.message"] === messageId,
  );
  const worker = await collector.waitForSpan(
    (s) => s.name === "lobu.worker" && s.traceId === turn.traceId,
  );
  const tools = await collector.waitForSpan(
    (s) => s.name === "lobu.gateway_tool" && s.traceId === turn.traceId,
  );
  // Both calls were traced, in the turn's own trace, under its worker span.
  await expect
    .poll(() => collector.spans.filter((s) => s.name === "lobu.gateway_tool").length)
    .toBe(2);
  for (const s of collector.spans.filter((s) => s.name === "lobu.gateway_tool")) {
    expect(s.traceId).toBe(turn.traceId);
    expect(s.parentSpanId).toBe(worker.spanId);
  }
  expect(tools.attributes["lobu.tool"]).toBe("list_schedules");
  expect(collector.spans.filter((s) => s.traceId === FOREIGN_TRACE)).toEqual([]);
});
