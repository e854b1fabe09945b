import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AgentEvent, createLogger, LobuConfig } from "@lobu/core";
import type { Logger } from "pino";
import type { ReplySurface } from "../../src/domain/messages.ts";
import type { Origin } from "../../src/domain/origin.ts";
import type { QueuedTurn } from "../../src/domain/turns.ts";
import { PublicUrl } from "../../src/http/public-url.ts";
import { ProviderRegistry } from "../../src/providers/registry.ts";
import { ActiveTurns, type TurnCredentialRevoker } from "../../src/runtime/active-turns.ts";
import { MessageAttempts, type RetryPolicy } from "../../src/runtime/attempts.ts";
import { SandboxManager } from "../../src/runtime/sandbox-manager.ts";
import { TurnStops } from "../../src/runtime/stops.ts";
import { TurnRunner } from "../../src/runtime/turn-runner.ts";
import { SkillCatalog } from "../../src/skills/catalog.ts";
import { SkillViews, skillViewsRoot } from "../../src/skills/views.ts";
import type { QueueClaim } from "../../src/store/port.ts";
import { buildDomain, type Domain } from "../../src/wiring/domain.ts";
import type { Startup } from "../../src/wiring/startup.ts";
import { openStorage, type Storage } from "../../src/wiring/storage.ts";
import { LinkedDriver } from "./linked-worker.ts";

/**
 * The gateway's runtime without sandboxes: the real storage (SQLite) and
 * domain phases, the real ActiveTurns, SandboxManager and TurnRunner, a
 * LinkedDriver whose workers the test plays, and a surface that records what
 * it was given to render.
 */

const KEY = "sk-ant-runtime-kit-0123456789abcdef";

/** A platform surface that keeps every turn's events, in the order it got them. */
export class RecordingSurface implements ReplySurface {
  /** Events per message id, across attempts. */
  readonly events = new Map<string, AgentEvent[]>();
  /** Turn streams that ended (the iterable finished), per message id. */
  readonly ended = new Map<string, number>();

  async deliver(
    _origin: Origin,
    turn: { messageId: string; events: AsyncIterable<AgentEvent> },
  ): Promise<void> {
    const seen = this.events.get(turn.messageId) ?? [];
    this.events.set(turn.messageId, seen);
    for await (const event of turn.events) seen.push(event);
    this.ended.set(turn.messageId, (this.ended.get(turn.messageId) ?? 0) + 1);
  }

  async notify(): Promise<void> {}
}

export interface RuntimeKit {
  /** The gateway's data directory (store, skill views, volumes). */
  dataDir: string;
  storage: Storage;
  domain: Domain;
  turns: ActiveTurns;
  driver: LinkedDriver;
  sandboxes: SandboxManager;
  attempts: MessageAttempts;
  runner: TurnRunner;
  surface: RecordingSurface;
  /** Stops (subscribed to the store's pub/sub, as on a gateway). */
  stops: TurnStops;
  /** Every revocation of turn-bound placeholders, in order. */
  revocations: { sandboxId: string; which: { turnId: string } | { except: string } }[];
  log: Logger;
  /** A message from `user` to the default agent (or `agentId`), queued and claimed. */
  submit(
    user: string,
    text: string,
    agentId?: string,
  ): Promise<{ turn: QueuedTurn; claim: QueueClaim }>;
  /** Put a claimed message back and claim it again: its next delivery. */
  redeliver(claim: QueueClaim): Promise<QueueClaim>;
  /** The message's event log. */
  logged(messageId: string): Promise<AgentEvent[]>;
  close(): Promise<void>;
}

export async function startRuntimeKit(
  opts: { agents?: Record<string, unknown>; retry?: RetryPolicy } = {},
): Promise<RuntimeKit> {
  const dataDir = mkdtempSync(join(tmpdir(), "lobu-runtime-"));
  const log = createLogger("test", { level: "silent" });
  const env = { ANTHROPIC_API_KEY: KEY };
  const config = LobuConfig.parse({ agents: opts.agents ?? { default: {} } });
  const startup: Startup = { progress: () => {}, onFailure: () => {} };
  const storage = await openStorage({ config, env, dataDir, log, startup });
  const domain = await buildDomain({
    config,
    env,
    log,
    providers: new ProviderRegistry(config, env),
    skills: new SkillCatalog(config),
    storage,
    publicUrl: new PublicUrl("http://lobu.test"),
    dataDir,
    skillViews: new SkillViews(skillViewsRoot(dataDir)),
  });
  const revocations: RuntimeKit["revocations"] = [];
  const revoker: TurnCredentialRevoker = {
    revokeTurns: (sandboxId, which) => {
      revocations.push({ sandboxId, which });
      return storage.placeholders.revokeTurns(sandboxId, which);
    },
  };
  const turns = new ActiveTurns({ revoker, log });
  const driver = new LinkedDriver();
  const sandboxes = new SandboxManager({
    driver,
    egress: {
      bind: async () => ({ socketPath: join(dataDir, "egress.sock"), close: async () => {} }),
    },
    kv: storage.store.kv,
    dataDir,
    limits: { memoryMb: 512, cpus: 1, pids: 64, diskMb: 100 },
    idleTimeoutMs: 0,
    env: {},
    log,
    owner: "test",
  });
  const attempts = new MessageAttempts(domain.conversations, opts.retry);
  const surface = new RecordingSurface();
  const stops = new TurnStops({
    store: storage.store,
    conversations: domain.conversations,
    turns,
    audit: domain.audit,
    log,
  });
  await stops.start();
  const runner = new TurnRunner({
    sandboxes,
    conversations: domain.conversations,
    contexts: domain.contexts,
    requests: domain.requests,
    turns,
    attempts,
    replySurfaceFor: () => surface,
    gatewayTools: domain.gatewayTools,
    stops,
    log,
  });
  const { store } = storage;
  /** The kit's current claim per partition: a new message there needs the last one acknowledged. */
  const claims = new Map<string, QueueClaim>();
  return {
    dataDir,
    storage,
    domain,
    turns,
    driver,
    sandboxes,
    attempts,
    runner,
    surface,
    stops,
    revocations,
    log,
    async submit(user, text, agentId) {
      const { messageId } = await domain.inbound.submit({
        ...(agentId ? { agentId } : {}),
        origin: { platform: "api", channelId: "runtime", userId: user, isDirect: true },
        text,
        eventId: `${user}:${text}`,
      });
      const partition = (await store.queue.get(messageId))!.partition;
      const previous = claims.get(partition);
      if (previous) await store.queue.ack(previous);
      const claim = await store.queue.claim("test", 60_000, { partition });
      if (!claim || claim.id !== messageId) throw new Error(`could not claim ${messageId}`);
      claims.set(partition, claim);
      return { turn: JSON.parse(claim.payload) as QueuedTurn, claim };
    },
    async redeliver(claim) {
      await store.queue.release(claim);
      const next = await store.queue.claim("test", 60_000, { partition: claim.partition });
      if (!next || next.id !== claim.id) throw new Error(`could not claim ${claim.id} again`);
      claims.set(next.partition, next);
      return next;
    },
    async logged(messageId) {
      const entries = await domain.conversations.readEvents(messageId, undefined, { blockMs: 0 });
      return entries.map((e) => e.event);
    },
    async close() {
      await stops.close();
      await sandboxes.close();
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
