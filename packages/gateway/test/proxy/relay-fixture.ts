import pino from "pino";
import type { ModelLimits } from "../../src/providers/model-limits.ts";
import { type ProviderRegistry, providerSecretName } from "../../src/providers/registry.ts";
import { createProviderRelay } from "../../src/providers/relay.ts";
import { ActiveTurns, type RunningTurn } from "../../src/runtime/active-turns.ts";
import { turnRelayCredentials } from "../../src/runtime/relay-credentials.ts";
import type { SecretRef } from "../../src/secrets/store.ts";
import { TRUSTING, type World } from "./fixture.ts";

/**
 * Each provider's key stored as the installation's secret, and a relay
 * placeholder for it issued to the trusting sandbox for `turn`: the
 * placeholders by provider id, what a worker would hold.
 */
export async function relayPlaceholders(
  w: World,
  keys: Record<string, string>,
  turn: RunningTurn,
): Promise<Record<string, string>> {
  const placeholders: Record<string, string> = {};
  for (const [id, value] of Object.entries(keys)) {
    const ref: SecretRef = { name: providerSecretName(id), scope: { kind: "installation" } };
    await w.secrets.set(ref, value);
    placeholders[id] = await w.placeholders.issue({
      sandboxId: TRUSTING,
      secret: ref,
      hosts: ["127.0.0.1"],
      locations: ["header"],
      purpose: "relay",
      turn: { turnId: turn.turnId, userKey: turn.userKey },
    });
  }
  return placeholders;
}

/**
 * The provider relay as the gateway wires it, with `turn` running in the
 * trusting sandbox (begun on `turns`, a fresh registry by default) and the
 * agent's `limits` (default: `models`, 1000 output tokens, 4 calls at once).
 */
export async function turnRelay(
  w: World,
  opts: {
    providers: ProviderRegistry;
    turn: RunningTurn;
    turns?: ActiveTurns;
  } & ({ models: string[] } | { limits: ModelLimits }) &
    Pick<
      Parameters<typeof createProviderRelay>[0],
      "recordUsage" | "failoverTargets" | "onFailover" | "admit"
    >,
): Promise<ReturnType<typeof createProviderRelay>> {
  // Past the fixture's own fields, the rest are createProviderRelay options, passed through.
  const {
    providers,
    turn,
    turns = new ActiveTurns({ revoker: w.placeholders }),
    models,
    limits = { models: models ?? [], maxOutputTokens: 1000, maxParallelCalls: 4 },
    ...relayOpts
  } = opts as typeof opts & { models?: string[]; limits?: ModelLimits };
  await turns.begin(TRUSTING, turn);
  return createProviderRelay({
    providers,
    log: pino({ level: "silent" }),
    credentialFor: turnRelayCredentials({
      placeholders: w.placeholders,
      secrets: w.secrets,
      turns,
      limits: () => limits,
    }),
    ...relayOpts,
  });
}
