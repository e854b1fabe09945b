export * from "./harness/gateway-process.ts";
export * from "./harness/leaks.ts";
export * from "./harness/procfs.ts";
export * from "./harness/sse.ts";
export * from "./llm/server.ts";
export * from "./llm/types.ts";
export * from "./otel/collector.ts";
export * from "./platforms.ts";
