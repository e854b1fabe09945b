import { errorMessage, type LobuConfig, newId } from "@lobu/core";
import type { Logger } from "pino";
import { SettingsLinks } from "../access/settings-links.ts";
import { TokenStore } from "../access/tokens.ts";
import { WebSessions } from "../access/web-sessions.ts";
import { TurnContextBuilder } from "../agents/context.ts";
import { AgentPackages, openNix } from "../agents/packages.ts";
import { AgentRegistry } from "../agents/registry.ts";
import { AuditLog } from "../audit/log.ts";
import { FileBlobs } from "../conversations/file-blobs.ts";
import { Inbound } from "../conversations/inbound.ts";
import { Conversations } from "../conversations/records.ts";
import type { PublicUrl } from "../http/public-url.ts";
import { McpClients } from "../mcp/clients.ts";
import type { ConnectDeps } from "../mcp/connect.ts";
import { ConnectFlows } from "../mcp/connect-flows.ts";
import { McpCredentials } from "../mcp/credentials.ts";
import { McpService } from "../mcp/service.ts";
import { Accounts } from "../people/accounts.ts";
import { MemoryStore } from "../people/memory.ts";
import { OidcSignIn } from "../people/oidc.ts";
import { UserSettingsStore } from "../people/user-settings.ts";
import { ModelCatalog } from "../providers/catalog.ts";
import { ModelAccess } from "../providers/model-access.ts";
import { modelLimitsFor } from "../providers/model-limits.ts";
import { KEYLESS, type ProviderRegistry, providerSecretName } from "../providers/registry.ts";
import { type AnswerRequest, answerRequest } from "../runtime/answers.ts";
import { GatewayToolHost } from "../runtime/gateway-tools.ts";
import { registerMemoryTools } from "../runtime/memory-tools.ts";
import { RequestRegistry } from "../runtime/requests.ts";
import { registerScheduleTools } from "../runtime/schedule-tools.ts";
import { SandboxTier } from "../sandbox/tier.ts";
import { ScheduleStore } from "../schedules/records.ts";
import { Scheduler } from "../schedules/scheduler.ts";
import type { SecretStore } from "../secrets/store.ts";
import type { SkillCatalog } from "../skills/catalog.ts";
import type { SkillViews } from "../skills/views.ts";
import { Budgets } from "../usage/budgets.ts";
import type { UsageReportDeps } from "../usage/report.ts";
import type { Storage } from "./storage.ts";

/** Phase 2: the records and rules of the gateway, on top of storage. Nothing runs yet. */
export interface Domain {
  providers: ProviderRegistry;
  /** What each model can do and costs (pi's catalogue, with lobu.toml's `model_info`). */
  catalog: ModelCatalog;
  /** Which models each agent may use (lobu.toml `models`). */
  modelAccess: ModelAccess;
  skills: SkillCatalog;
  /** Providers with a key at installation scope (from the environment or stored). */
  configuredProviders: string[];
  agents: AgentRegistry;
  userSettings: UserSettingsStore;
  /** Identities linked into accounts (one person across platforms). */
  accounts: Accounts;
  /** Sign-in with the team's OpenID Connect provider (`[identity.oidc]`), linking by subject. */
  oidc: OidcSignIn | undefined;
  conversations: Conversations;
  /** REST uploads waiting for their turn, files sent to REST clients (conversations/file-blobs.ts). */
  fileBlobs: FileBlobs;
  audit: AuditLog;
  /** Usage budgets (`[budgets]`): counters, admission, use report. */
  budgets: Budgets;
  usage: UsageReportDeps;
  tokens: TokenStore;
  sessions: WebSessions;
  settingsLinks: SettingsLinks;
  requests: RequestRegistry;
  answer: AnswerRequest;
  /** Tools that run in the gateway (outside the sandboxes); the gateway enforces their approval. */
  gatewayTools: GatewayToolHost;
  inbound: Inbound;
  contexts: TurnContextBuilder;
  /** Nix packages (`[packages]`): state, profiles, garbage collection. */
  packages: AgentPackages;
  /** Which sandbox driver runs agents: settled by the runtime phase. */
  sandboxTier: SandboxTier;
  /** People's schedules and reminders (`[schedules]`), and what fires them (started last). */
  schedules: ScheduleStore;
  scheduler: Scheduler;
  /** People's long-term memory per agent (`[memory]`), encrypted. */
  memory: MemoryStore;
  /** MCP servers: the gateway's clients, people's connections, the connect flow. */
  mcp: { service: McpService; clients: McpClients; connect: ConnectDeps };
}

/** Build the domain objects in dependency order; each gets only what it uses. */
export async function buildDomain(opts: {
  config: LobuConfig;
  env: NodeJS.ProcessEnv;
  log: Logger;
  providers: ProviderRegistry;
  skills: SkillCatalog;
  /** Where each sandbox's skill files are put (shown read-only by its driver). */
  skillViews: SkillViews;
  storage: Storage;
  publicUrl: PublicUrl;
  dataDir: string;
  configPath?: string;
  /** This gateway, as the owner of the schedule runs it claims (default: a fresh id). */
  instanceId?: string;
}): Promise<Domain> {
  const { config, env, log, providers, skills, skillViews, publicUrl } = opts;
  const { store, secrets, placeholders } = opts.storage;
  const configuredProviders = await syncEnvProviderKeys(secrets, providers, env);
  const catalog = new ModelCatalog();
  const modelAccess = new ModelAccess(config, providers, catalog);
  const agents = new AgentRegistry(store.kv, config, log);
  const userSettings = new UserSettingsStore(store.kv, log, opts.storage.accountOf);
  const conversations = new Conversations(store, log);
  const audit = new AuditLog(store, { log });
  const accounts = new Accounts({ kv: store.kv, audit: (entry) => audit.record(entry) });
  const budgets = new Budgets({
    kv: store.kv,
    config,
    onExceeded: (refusal, where) =>
      audit.record({
        action: "budget.exceeded",
        actor: refusal.userKey ?? "system",
        agentId: refusal.agentId,
        details: {
          scope: refusal.scope,
          limit: refusal.limit,
          value: refusal.value,
          used: refusal.used,
          resetsAt: new Date(refusal.resetsAt).toISOString(),
          refused: where,
        },
      }),
    onError: (err, lost, context) => log.error({ ...context, err: errorMessage(err) }, lost),
  });
  const sessions = new WebSessions(store.kv, log);
  const requests = new RequestRegistry(store, log);
  const sandboxTier = new SandboxTier();
  const packages = new AgentPackages({
    nix: await openNix({ config, dataDir: opts.dataDir, configPath: opts.configPath, log, env }),
    tier: sandboxTier,
    agents,
    userSettings,
    skills,
    log,
  });
  const inbound = new Inbound({
    agents,
    queue: store.queue,
    conversations,
    maxMessageBytes: config.gateway.max_message_bytes,
    counters: store.kv,
    log,
  });
  const gatewayTools = new GatewayToolHost({ agents, userSettings, audit, log });
  const { schedules, scheduler, memory } = buildPersonalTools({
    config,
    log,
    storage: opts.storage,
    inbound,
    audit,
    gatewayTools,
    instanceId: opts.instanceId ?? newId("gw"),
  });
  const mcp = buildMcp({
    config,
    log,
    secrets,
    kv: store.kv,
    userSettings,
    skills,
    audit,
    publicUrl,
  });
  if (Object.keys(config.mcp).length > 0)
    gatewayTools.addProvider({
      toolsFor: ({ agent, userKey }) => mcp.service.toolsFor(agent, userKey),
    });
  const answerDeps = {
    config,
    agents,
    requests,
    userSettings,
    skills,
    skillViews,
    secrets,
    audit,
    packages,
    mcp: mcp.service,
  };
  return {
    providers,
    catalog,
    modelAccess,
    skills,
    configuredProviders,
    agents,
    userSettings,
    accounts,
    oidc: config.identity.oidc ? new OidcSignIn(config.identity.oidc, store.kv, env) : undefined,
    conversations,
    fileBlobs: new FileBlobs({ kv: store.kv, log }),
    audit,
    budgets,
    usage: {
      usageTotals: (day) => audit.usageTotals(day),
      agentIds: async () => (await agents.list()).map((a) => a.id),
      budgets,
      prices: config.prices,
      catalogPrice: (provider, model) => {
        const p = providers.get(provider);
        return p ? (catalog.info(p, model).price ?? undefined) : undefined;
      },
    },
    tokens: new TokenStore(store.kv, log, env.LOBU_ADMIN_TOKEN),
    sessions,
    settingsLinks: new SettingsLinks({ sessions, agents, platforms: config.platforms, publicUrl }),
    requests,
    answer: (requestId, answer, by) => answerRequest(answerDeps, requestId, answer, by),
    gatewayTools,
    inbound,
    contexts: new TurnContextBuilder({
      agents,
      providers,
      secrets,
      placeholders,
      userSettings,
      skills,
      skillViews,
      budgets,
      modelLimits: (agentId) => modelLimitsFor(config, agentId),
      packages,
      modelImages: config.files.images_to_model,
      catalog,
      access: modelAccess,
    }),
    packages,
    sandboxTier,
    schedules,
    scheduler,
    memory,
    mcp,
  };
}

/** The MCP gateway's parts (docs/mcp.md); tokens live in the secret store's `person` scope. */
function buildMcp(opts: {
  config: LobuConfig;
  log: Logger;
  secrets: SecretStore;
  kv: Storage["store"]["kv"];
  userSettings: UserSettingsStore;
  skills: SkillCatalog;
  audit: AuditLog;
  publicUrl: PublicUrl;
}): Domain["mcp"] {
  const { config, secrets, publicUrl } = opts;
  const log = opts.log.child({ component: "mcp" });
  const credentials = new McpCredentials(secrets);
  const flows = new ConnectFlows(opts.kv, secrets, log);
  const redirectUrl = () => `${publicUrl.value}/mcp/callback`;
  const clients = new McpClients({ config, credentials, secrets, redirectUrl, log });
  const service = new McpService({
    config,
    clients,
    credentials,
    flows,
    userSettings: opts.userSettings,
    skills: opts.skills,
    audit: opts.audit,
    publicUrl: () => publicUrl.value,
    log,
  });
  return {
    service,
    clients,
    connect: { config, credentials, flows, clients, secrets, redirectUrl },
  };
}

/** Schedules and memory, with their gateway tools registered unless `[schedules]`/`[memory]` turn them off. */
function buildPersonalTools(opts: {
  config: LobuConfig;
  log: Logger;
  storage: Storage;
  inbound: Inbound;
  audit: AuditLog;
  gatewayTools: GatewayToolHost;
  instanceId: string;
}): Pick<Domain, "schedules" | "scheduler" | "memory"> {
  const { config, log, storage, gatewayTools } = opts;
  const s = config.schedules;
  const schedules = new ScheduleStore({
    kv: storage.store.kv,
    log,
    maxPerPerson: s.max_per_person,
  });
  const scheduler = new Scheduler({
    schedules,
    submit: (message) => opts.inbound.submit(message),
    audit: opts.audit,
    log,
    owner: opts.instanceId,
    pollMs: s.poll_interval,
  });
  const memory = new MemoryStore({
    kv: storage.store.kv,
    secrets: storage.secrets,
    log,
    limits: { maxEntries: config.memory.max_entries, maxEntryChars: config.memory.max_entry_chars },
    accountOf: storage.accountOf,
  });
  if (s.enabled)
    registerScheduleTools(gatewayTools, {
      schedules,
      scheduler,
      limits: {
        minIntervalMs: s.min_interval,
        maxHorizonMs: s.max_horizon,
        defaultTimezone: s.default_timezone,
        maxTextChars: s.max_text_chars,
        maxMessageBytes: config.gateway.max_message_bytes,
      },
    });
  if (config.memory.enabled) registerMemoryTools(gatewayTools, { memory });
  return { schedules, scheduler, memory };
}

/** Copy provider keys from the environment into the secret store (installation scope). */
async function syncEnvProviderKeys(
  secrets: SecretStore,
  providers: ProviderRegistry,
  env: NodeJS.ProcessEnv,
): Promise<string[]> {
  const configured: string[] = [];
  for (const p of providers.list()) {
    const ref = { scope: { kind: "installation" as const }, name: providerSecretName(p.id) };
    // A local server configured without a key works without one (registry.ts, KEYLESS).
    const value = (p.keyEnv ? env[p.keyEnv] : undefined) || (p.keyOptional ? KEYLESS : undefined);
    if (value) {
      if ((await secrets.get(ref)) !== value) await secrets.set(ref, value);
      configured.push(p.id);
    } else if (await secrets.meta(ref)) {
      configured.push(p.id);
    }
  }
  return configured;
}
