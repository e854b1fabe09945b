import {
  collectEvents,
  type GatewayProcess,
  type MockLlm,
  type OtlpCollector,
  startGatewayProcess,
  startMockLlm,
  startOtlpCollector,
} from "@lobu/testkit";
import { afterAll, beforeAll, expect, it } from "vitest";

let llm: MockLlm;
let collector: OtlpCollector;
let gw: GatewayProcess;

beforeAll(async () => {
  llm = await startMockLlm();
  collector = await startOtlpCollector();
  gw = await startGatewayProcess({
    toml: `[telemetry]\notlp_endpoint = "${collector.url}"\nservice_name = "lobu-test"\n`,
    env: { ANTHROPIC_API_KEY: "k", ANTHROPIC_BASE_URL: llm.url },
  });
});

afterAll(async () => {
  await gw?.stop();
  await collector?.close();
  await llm?.close();
});

it("exports a trace per turn, with the cold wake as a child span", async () => {
  const res = await gw.api("/api/v1/agents/default/messages", {
    method: "POST",
    headers: { accept: "text/event-stream" },
    body: JSON.stringify({ user: "olive", text: "trace me" }),
  });
  const messageId = res.headers.get("x-lobu-message-id")!;
  await collectEvents(res);
  const turn = await collector.waitForSpan(
    (s) => s.name === "lobu.turn" && s.attributes["lobu.message"] === messageId,
  );
  expect(turn.attributes).toMatchObject({
    "lobu.agent": "default",
    "lobu.platform": "api",
    "lobu.attempt": 1,
    "lobu.result": "done",
  });
  expect(turn.resource["service.name"]).toBe("lobu-test");
  const wake = await collector.waitForSpan(
    (s) => s.name === "lobu.sandbox.wake" && s.traceId === turn.traceId,
  );
  expect(wake.parentSpanId).toBe(turn.spanId);
});
