import { context, TraceFlags, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createLogger } from "../src/log.ts";

const manager = new AsyncLocalStorageContextManager();

beforeAll(() => {
  context.setGlobalContextManager(manager.enable());
});

afterAll(() => {
  context.disable();
});

function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("t", {
    level: "info",
    destination: { write: (l) => lines.push(JSON.parse(l)) },
  });
  return { log, lines };
}

it("a line written inside a span carries its trace and span ids", async () => {
  const { log, lines } = capture();
  const span = trace.wrapSpanContext({
    traceId: "0af7651916cd43dd8448eb211c80319c",
    spanId: "b7ad6b7169203331",
    traceFlags: TraceFlags.SAMPLED,
  });
  await context.with(trace.setSpan(context.active(), span), async () => {
    await Promise.resolve();
    log.info("inside");
  });
  log.info("outside");
  expect(lines[0]).toMatchObject({
    msg: "inside",
    trace_id: "0af7651916cd43dd8448eb211c80319c",
    span_id: "b7ad6b7169203331",
    trace_flags: "01",
  });
  expect(lines[1]).not.toHaveProperty("trace_id");
});
