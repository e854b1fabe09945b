export { checkConfigReferences } from "./agents/references.ts";
export type { AgentDefinition } from "./agents/registry.ts";
export {
  type DataDirLock,
  describeHolder,
  type LockHolder,
  lockDataDir,
  lockDataDirShared,
  lockHolder,
} from "./datadir/lock.ts";
export type { InboundMessage } from "./domain/messages.ts";
export type { Origin } from "./domain/origin.ts";
export { type Gateway, type GatewayOptions, type GatewaySummary, startGateway } from "./gateway.ts";
export { checkNix, type NixCheck } from "./nix/doctor.ts";
export { PLATFORMS } from "./platforms/index.ts";
export type { AdapterContext, PlatformAdapter } from "./platforms/shared/adapter.ts";
export type { PlatformPlugin, PlatformSetup } from "./platforms/shared/plugin.ts";
export { type ProviderProbe, probeProvider } from "./providers/probe.ts";
export { KEYLESS, ProviderRegistry, providerSecretName } from "./providers/registry.ts";
export { createDriver, resolveAutoDriver } from "./runtime/drivers.ts";
export type {
  GatewayToolContext,
  GatewayToolDefinition,
  GatewayToolHost,
  GatewayToolProvider,
  TurnGatewayTool,
} from "./runtime/gateway-tools.ts";
export {
  generateMasterKey,
  MASTER_KEY_FILE,
  parseMasterKey,
  resolveMasterKey,
  SecretStore,
} from "./secrets/index.ts";
export * from "./skills/index.ts";
export { createStore } from "./store/index.ts";
export { redactUrl } from "./store/redis/connection.ts";
export { platformsSetUp } from "./wiring/platforms.ts";
