export * from "./addresses.ts";
export * from "./audit.ts";
export * from "./binder.ts";
export * from "./ca.ts";
export * from "./explain.ts";
export * from "./server.ts";
