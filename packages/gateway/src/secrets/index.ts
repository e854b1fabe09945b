export * from "./master-key.ts";
export * from "./placeholders.ts";
export * from "./store.ts";
