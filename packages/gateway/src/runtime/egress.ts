import { existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { digest, type LobuConfig } from "@lobu/core";
import type { Logger } from "pino";
import type { AgentDefinition, AgentRegistry } from "../agents/registry.ts";
import type { AuditLog } from "../audit/log.ts";
import type { Conversations } from "../conversations/records.ts";
import type { UserSettingsStore } from "../people/user-settings.ts";
import { userDomain } from "../people/validate.ts";
import type { ModelAccess } from "../providers/model-access.ts";
import { modelLimitsFor } from "../providers/model-limits.ts";
import type { ProviderRegistry } from "../providers/registry.ts";
import {
  createProviderRelay,
  type FailoverEvent,
  RELAY_PREFIX,
  type RelayDeps,
  type UsageRecord,
} from "../providers/relay.ts";
import { providerAgent, upstreamCall } from "../providers/upstream-call.ts";
import {
  caBundle,
  cachingResolver,
  createEgressBinder,
  createEgressServer,
  type EgressPolicy,
  loadOrCreateCa,
  type Resolver,
  systemResolver,
  validateCidrs,
} from "../proxy/index.ts";
import { egressTestHooks, TEST_MODE_ENV, testResolver } from "../proxy/test-mode.ts";
import type { EgressBinder } from "../sandbox/driver.ts";
import { poolIdFor } from "../sandbox/virtual-driver.ts";
import type { PlaceholderRegistry } from "../secrets/placeholders.ts";
import type { SecretStore } from "../secrets/store.ts";
import type { SkillCatalog } from "../skills/catalog.ts";
import type { Store } from "../store/port.ts";
import { gatewayMetrics } from "../telemetry/metrics.ts";
import { inSpan, pastSpan, SpanKind, turnParent } from "../telemetry/otel.ts";
import { estimateCost } from "../usage/prices.ts";
import type { TurnRegistry } from "./active-turns.ts";
import { agentFailoverTargets } from "./failover.ts";
import { turnRelayCredentials } from "./relay-credentials.ts";
import { turnGatedPlaceholders } from "./turn-gate.ts";

export interface EgressDeps {
  config: LobuConfig;
  dataDir: string;
  store: Store;
  secrets: SecretStore;
  placeholders: PlaceholderRegistry;
  providers: ProviderRegistry;
  agents: AgentRegistry;
  userSettings: UserSettingsStore;
  skills: SkillCatalog;
  conversations: Conversations;
  audit: AuditLog;
  /** The turn running on each sandbox: credentials, personal domains and usage follow it. */
  turns: TurnRegistry;
  log: Logger;
  onUsage?: (sandboxId: string, usage: UsageRecord) => void;
  /** Admits each model call the relay is about to make (usage budgets). */
  admit?: RelayDeps["admit"];
  /** Which models each agent may call (lobu.toml `models`); absent: the agent's `models` as written. */
  modelAccess?: Pick<ModelAccess, "relayModels">;
  /** A model call moved to a fallback provider (it is audited here; the turn is told there). */
  onFailover?: (event: FailoverEvent) => void;
  /** Read for the test-only hooks (see proxy/test-mode.ts). Default: process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface Egress {
  binder: EgressBinder;
  /** Host path of the CA bundle (system CAs + installation CA) workers must trust. */
  caBundlePath: string;
  /** The network policy the proxy applies to a sandbox right now (for the admin UI and tests). */
  policyFor(sandboxId: string): Promise<EgressPolicy | null>;
  close(): Promise<void>;
}

const POLICY_TTL_MS = 1000;

/** Unix socket paths are limited to 107 bytes: keep the run dir short. */
function runDirFor(dataDir: string): string {
  const preferred = join(dataDir, "run");
  if (Buffer.byteLength(preferred) <= 60) return preferred;
  return join(
    process.env.XDG_RUNTIME_DIR && existsSync(process.env.XDG_RUNTIME_DIR)
      ? process.env.XDG_RUNTIME_DIR
      : tmpdir(),
    `lobu-${digest(dataDir, 12)}`,
  );
}

/**
 * The gateway side of every sandbox's network: one egress endpoint per sandbox
 * (forward proxy with allowlists, SSRF defence and placeholder swapping) whose
 * internal routes relay LLM calls with the real provider keys.
 */
export async function startEgress(deps: EgressDeps): Promise<Egress> {
  const { config, dataDir, log } = deps;
  for (const [section, network] of [
    ["[network]", config.network],
    ...Object.entries(config.agents).map(
      ([id, a]) => [`[agents.${id}.network]`, a.network] as const,
    ),
  ] as const) {
    try {
      validateCidrs(network.allow_private_ranges);
    } catch (err) {
      throw new Error(`lobu.toml ${section} ${(err as Error).message}`);
    }
  }
  const hooks = egressTestHooks(deps.env ?? process.env);
  if (hooks) {
    log.warn(
      {
        [TEST_MODE_ENV]: "1",
        resolve: [...(hooks.resolve?.keys() ?? [])],
        upstreamCa: !!hooks.upstreamCa,
      },
      "egress proxy TEST HOOKS are active (fixed DNS answers / extra upstream CA); never use this in production",
    );
  }
  const ca = await loadOrCreateCa(dataDir);
  const caBundlePath = await caBundle(dataDir);

  /** What does not change between requests: the agent's and the installation's rules. */
  interface BasePolicy {
    agent: AgentDefinition;
    allow: string[];
    deny: string[];
    allowPrivateRanges: string[];
  }
  const cache = new Map<string, { at: number; base: BasePolicy | null }>();
  async function computeBase(sandboxId: string): Promise<BasePolicy | null> {
    const conversation = await deps.conversations.getConversation(sandboxId);
    if (!conversation) return null;
    const agent = await deps.agents.get(conversation.key.agentId);
    if (!agent) return null;
    // Not a local server's (Ollama, vLLM): it takes calls without a key, so a
    // sandbox reaching it directly would skip the relay's limits and metering.
    const providerHosts = deps.providers
      .list()
      .filter((p) => (!agent.provider || p.id === agent.provider) && !p.keyOptional)
      .map((p) => new URL(p.baseUrl).hostname);
    return {
      agent,
      allow: [
        ...config.network.allow,
        ...agent.network.allow,
        ...providerHosts,
        // Hosts an agent secret is bound to are where it is meant to be used.
        ...Object.values(agent.secrets).flatMap((b) => b.hosts),
      ],
      deny: [...new Set([...config.network.deny, ...agent.network.deny])],
      // Operator opt-ins only: lobu.toml, never the API or the settings page.
      allowPrivateRanges: [
        ...new Set([
          ...config.network.allow_private_ranges,
          ...(agent.source === "config"
            ? (config.agents[agent.id]?.network.allow_private_ranges ?? [])
            : []),
        ]),
      ],
    };
  }
  async function baseFor(sandboxId: string): Promise<BasePolicy | null> {
    const hit = cache.get(sandboxId);
    if (hit && Date.now() - hit.at < POLICY_TTL_MS) return hit.base;
    const base = await computeBase(sandboxId);
    cache.set(sandboxId, { at: Date.now(), base });
    if (cache.size > 10_000) cache.delete(cache.keys().next().value!);
    return base;
  }
  /**
   * The agent's rules (cached briefly) plus the own grants of the person whose
   * turn is running, read fresh every time: a domain granted mid-turn works for
   * the very next request, and one removed stops working at once. No turn
   * running (a background process, `lobu sandboxes exec`): nobody's grants. In a
   * channel's shared sandbox, each turn gets its sender's grants only.
   */
  async function policyFor(sandboxId: string): Promise<EgressPolicy | null> {
    const base = await baseFor(sandboxId);
    if (!base) return null;
    const running = deps.turns.current(sandboxId);
    const settings = running
      ? await deps.userSettings.get(base.agent.id, running.userKey)
      : { skills: [] as string[], domains: [] as string[] };
    // Skills are the operator's (lobu.toml), whoever installed them.
    const skills = deps.skills.pick([...base.agent.skills, ...settings.skills]);
    return {
      agentId: base.agent.id,
      allow: [...new Set([...base.allow, ...skills.flatMap((s) => s.domains)])],
      deny: base.deny,
      // What the person allowed themselves; broad patterns (`*`, `*.com`) are for operators only.
      userAllow: settings.domains.flatMap((d) => {
        try {
          return [userDomain(d, base.deny)];
        } catch {
          return [];
        }
      }),
      allowPrivateRanges: base.allowPrivateRanges,
    };
  }

  // Model calls' connections to providers: closed with the egress endpoints.
  const providerConnections = providerAgent();
  const relay = createProviderRelay({
    providers: deps.providers,
    upstream: upstreamCall(providerConnections),
    log,
    ...(deps.admit ? { admit: deps.admit } : {}),
    credentialFor: turnRelayCredentials({
      placeholders: deps.placeholders,
      secrets: deps.secrets,
      turns: deps.turns,
      limits: (agentId) => modelLimitsFor(config, agentId),
      ...(deps.modelAccess
        ? { relayModels: deps.modelAccess.relayModels.bind(deps.modelAccess) }
        : {}),
    }),
    failoverTargets: agentFailoverTargets({
      config,
      providers: deps.providers,
      secrets: deps.secrets,
    }),
    onFailover(event) {
      deps.audit.record({
        action: "model.failover",
        actor: `sandbox:${event.sandboxId}`,
        agentId: event.agentId,
        sandboxId: event.sandboxId,
        details: {
          userKey: event.userKey,
          from: `${event.from.provider}/${event.from.model}`,
          to: `${event.to.provider}/${event.to.model}`,
          status: event.status,
          reason: event.reason,
        },
      });
      deps.onFailover?.(event);
    },
    recordUsage(usage) {
      deps.audit.usage({
        at: Date.now(),
        agentId: usage.agentId,
        userKey: usage.userKey,
        provider: usage.provider,
        model: usage.model,
        inputTokens: usage.inputTokens,
        outputTokens: usage.outputTokens,
        cacheReadTokens: usage.cacheReadTokens,
        cacheWriteTokens: usage.cacheWriteTokens,
        status: usage.status,
      });
      const m = gatewayMetrics();
      const by = {
        "lobu.agent": usage.agentId,
        "lobu.provider": usage.provider,
        "lobu.model": usage.model,
      };
      m.tokens.add(usage.inputTokens, { ...by, "lobu.token.type": "input" });
      m.tokens.add(usage.outputTokens, { ...by, "lobu.token.type": "output" });
      if (usage.cacheReadTokens)
        m.tokens.add(usage.cacheReadTokens, { ...by, "lobu.token.type": "cache_read" });
      if (usage.cacheWriteTokens)
        m.tokens.add(usage.cacheWriteTokens, { ...by, "lobu.token.type": "cache_write" });
      const cost = estimateCost(config.prices, usage.provider, usage.model, usage);
      if (cost) m.cost.add(cost, by);
      deps.onUsage?.(usage.sandboxId, usage);
    },
  });

  const system = cachingResolver(systemResolver, { ttlMs: 30_000, max: 10_000 });
  const resolver: Resolver = hooks?.resolve ? testResolver(hooks.resolve, system) : system;
  const runDir = runDirFor(dataDir);
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  // Placeholders act only inside a running turn, a person's own only inside their turns.
  const gated = turnGatedPlaceholders(deps.placeholders, deps.turns);
  const binder = createEgressBinder({
    runDir,
    createServer: (identity) =>
      createEgressServer({
        poolMember: (poolId, sandboxId) =>
          poolId === poolIdFor(sandboxId, config.sandbox.pool_size),
        identity,
        policyFor,
        // The internal API needs the caller's agent only: the cached base, no settings read.
        agentOf: async (sandboxId) => (await baseFor(sandboxId))?.agent.id ?? null,
        placeholders:
          identity.kind === "sandbox"
            ? turnGatedPlaceholders(deps.placeholders, deps.turns, {
                requester: identity.sandboxId,
              })
            : gated,
        secrets: deps.secrets,
        ca,
        resolver,
        ...(hooks?.upstreamCa ? { upstreamCa: hooks.upstreamCa } : {}),
        logger: log,
        internal: async (req, res, ctx) => {
          if ((req.url ?? "").startsWith(RELAY_PREFIX)) {
            // Under the turn's worker span (or the worker's own, when it names the turn's trace).
            const claimed = req.headers.traceparent;
            const parent = turnParent(
              deps.turns.current(ctx.sandboxId)?.traceparent,
              typeof claimed === "string" ? claimed : undefined,
            );
            return inSpan(
              "lobu.relay",
              { "lobu.sandbox": ctx.sandboxId, "http.request.method": req.method ?? "" },
              async (span) => {
                await relay(req, res, ctx);
                span.setAttribute("http.response.status_code", res.statusCode);
              },
              { parent, kind: SpanKind.SERVER },
            );
          }
          res.writeHead(404, { "content-type": "text/plain" });
          res.end(`Lobu: no internal endpoint ${req.url}\n`);
        },
        audit: (record) => {
          // The decision, as a metric and as a span under the sandbox's running turn.
          gatewayMetrics().egress.add(1, { "lobu.decision": record.decision });
          const turn = record.sandboxId ? deps.turns.current(record.sandboxId) : null;
          // Internal requests (the relay) have their own span.
          if (turn?.traceparent && record.decision !== "internal")
            pastSpan(
              "lobu.egress",
              record.at,
              {
                "lobu.sandbox": record.sandboxId ?? "",
                "lobu.decision": record.decision,
                "server.address": record.host,
                "server.port": record.port,
                "http.request.method": record.method,
              },
              turnParent(turn.traceparent, undefined),
              SpanKind.SERVER,
            );
          deps.audit.record({
            action: `egress.${record.decision}`,
            actor: record.sandboxId ? `sandbox:${record.sandboxId}` : "unknown",
            agentId: record.agentId,
            sandboxId: record.sandboxId ?? undefined,
            details: {
              method: record.method,
              host: record.host,
              port: record.port,
              reason: record.reason,
              status: record.status,
              secrets: record.secrets,
              unswapped: record.unswapped,
              notes: record.notes,
            },
          });
        },
      }),
  });

  return {
    binder,
    caBundlePath,
    policyFor,
    async close() {
      cache.clear();
      await providerConnections.close();
    },
  };
}
