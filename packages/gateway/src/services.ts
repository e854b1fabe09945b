import type { LobuConfig } from "@lobu/core";
import type { Logger } from "pino";
import type { TokenStore } from "./access/tokens.ts";
import type { TurnContextBuilder } from "./agents/context.ts";
import type { AgentRegistry } from "./agents/registry.ts";
import type { AuditLog } from "./audit/log.ts";
import type { Inbound } from "./conversations/inbound.ts";
import type { Conversations } from "./conversations/records.ts";
import type { UserSettingsStore } from "./people/user-settings.ts";
import type { ProviderRegistry } from "./providers/registry.ts";
import type { Dispatcher } from "./runtime/dispatcher.ts";
import type { GatewayToolHost } from "./runtime/gateway-tools.ts";
import type { RequestRegistry } from "./runtime/requests.ts";
import type { SandboxManager } from "./runtime/sandbox-manager.ts";
import type { TurnRunner } from "./runtime/turn-runner.ts";
import type { PlaceholderRegistry } from "./secrets/placeholders.ts";
import type { SecretStore } from "./secrets/store.ts";
import type { SkillCatalog } from "./skills/catalog.ts";
import type { Store } from "./store/port.ts";
import type { Budgets } from "./usage/budgets.ts";

/** Everything the HTTP layer and adapters may use; built once in gateway.ts. */
export interface GatewayServices {
  config: LobuConfig;
  configPath: string | undefined;
  dataDir: string;
  publicUrl: string;
  instanceId: string;
  log: Logger;
  store: Store;
  agents: AgentRegistry;
  providers: ProviderRegistry;
  secrets: SecretStore;
  /** Placeholders issued to sandboxes (revoked when a sandbox is reset). */
  placeholders: PlaceholderRegistry;
  skills: SkillCatalog;
  userSettings: UserSettingsStore;
  contexts: TurnContextBuilder;
  conversations: Conversations;
  inbound: Inbound;
  requests: RequestRegistry;
  sandboxes: SandboxManager;
  runner: TurnRunner;
  dispatcher: Dispatcher;
  tokens: TokenStore;
  audit: AuditLog;
  /** Usage budgets (`[budgets]`): counters, admission, use report. */
  budgets: Budgets;
  /** Tools that run in the gateway (outside the sandboxes); the gateway enforces their approval. */
  gatewayTools: GatewayToolHost;
}
