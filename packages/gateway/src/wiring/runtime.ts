import type { LobuConfig } from "@lobu/core";
import type { Logger } from "pino";
import { restHistory } from "../conversations/rest-history.ts";
import { ThreadContext } from "../conversations/thread-context.ts";
import type { ConversationHistory } from "../domain/history.ts";
import type { ReplySurface } from "../domain/messages.ts";
import { API_PLATFORM } from "../domain/origin.ts";
import { StdioMcpTools } from "../mcp/stdio.ts";
import { ActiveTurns } from "../runtime/active-turns.ts";
import { MessageAttempts } from "../runtime/attempts.ts";
import { Dispatcher } from "../runtime/dispatcher.ts";
import {
  type SelectedDriver,
  selectDriver,
  snapshotsRoot,
  volumeBackend,
  volumesRoot,
} from "../runtime/drivers.ts";
import { type Egress, startEgress } from "../runtime/egress.ts";
import { FilesIn } from "../runtime/files-in.ts";
import { historyTool } from "../runtime/history-tool.ts";
import { linkCommandReply } from "../runtime/link-command.ts";
import { deliverAfterPackages } from "../runtime/package-grants.ts";
import { SandboxPlacement } from "../runtime/placement.ts";
import { RetentionSweeper } from "../runtime/retention.ts";
import { SandboxControl } from "../runtime/sandbox-control.ts";
import { SandboxManager } from "../runtime/sandbox-manager.ts";
import { sendFileTool } from "../runtime/send-file.ts";
import { TurnStops } from "../runtime/stops.ts";
import { TurnRunner } from "../runtime/turn-runner.ts";
import type { WorkerLaunchConfig } from "../sandbox/launcher.ts";
import type { SkillViews } from "../skills/views.ts";
import { observeGauges } from "../telemetry/metrics.ts";
import { budgetError } from "../usage/budgets.ts";
import type { Domain } from "./domain.ts";
import type { Startup } from "./startup.ts";
import type { Storage } from "./storage.ts";

/** Phase 3: what runs turns — the egress endpoint, the sandbox driver, the runner and the dispatcher. */
export interface Runtime {
  egress: Egress;
  driver: SelectedDriver;
  sandboxes: SandboxManager;
  /** Which gateway runs each sandbox (on Redis; absent on SQLite, where one gateway runs all). */
  placement: SandboxPlacement | undefined;
  runner: TurnRunner;
  dispatcher: Dispatcher;
  /** Stops reading the queue and sandbox gauges (before the store closes). */
  stopGauges: () => void;
  /** Stopping turns from any surface, on whichever gateway runs them. */
  stops: TurnStops;
  /** Stops the scheduled garbage collection of Nix packages. */
  stopPackageGc: () => void;
  /** Deletes what `[retention]` says is too old (scheduled by startGateway). */
  retention: RetentionSweeper;
}

/**
 * Start the runtime. The egress side and the turn runner meet only through
 * one object made first: ActiveTurns, the turn running on each sandbox (its
 * credentials act; the relay's usage and budget refusals go into its
 * stream). The dispatcher is created stopped: startGateway starts it last.
 */
export async function startRuntime(opts: {
  config: LobuConfig;
  dataDir: string;
  instanceId: string;
  log: Logger;
  /** How workers are started (embedding, tests); default: the `@lobu/worker` package. */
  worker: WorkerLaunchConfig | undefined;
  startup: Startup;
  storage: Storage;
  domain: Pick<
    Domain,
    | "providers"
    | "skills"
    | "accounts"
    | "agents"
    | "userSettings"
    | "modelAccess"
    | "conversations"
    | "fileBlobs"
    | "audit"
    | "budgets"
    | "requests"
    | "gatewayTools"
    | "contexts"
    | "settingsLinks"
    | "packages"
    | "sandboxTier"
    | "mcp"
  >;
  /** Each sandbox's skill files (a folder its driver shows read-only). */
  skillViews: Pick<SkillViews, "ensure" | "remove">;
  /** The clock retention is measured by (tests move it); default: the real one. */
  retentionClock?: () => number;
  /** Where replies to each platform go (built before the runner, started after it). */
  replySurfaceFor(platform: string): ReplySurface | undefined;
  /** The history of each platform's conversations (its adapter's, read once it started). */
  historyFor(platform: string): ConversationHistory | undefined;
}): Promise<Runtime> {
  const { config, dataDir, instanceId, log, startup, storage, domain } = opts;
  const { store, secrets, placeholders } = storage;
  const { conversations, audit, budgets, requests, gatewayTools } = domain;
  // The turn running on each sandbox of this gateway: credentials act only inside it.
  const turns = new ActiveTurns({ revoker: placeholders, log });
  // One retry budget for the runner (worker failures) and the dispatcher (crashes).
  const attempts = new MessageAttempts(conversations);

  startup.progress("starting the egress proxy");
  const egress = await startEgress({
    config,
    dataDir,
    store,
    secrets,
    placeholders,
    providers: domain.providers,
    agents: domain.agents,
    userSettings: domain.userSettings,
    skills: domain.skills,
    conversations,
    audit,
    turns,
    log,
    onUsage: (sandboxId, usage) => {
      budgets.record(usage);
      turns.stream(sandboxId)?.emit({
        type: "usage",
        provider: usage.provider,
        model: usage.model,
        inputTokens: usage.inputTokens,
        outputTokens: usage.outputTokens,
      });
    },
    modelAccess: domain.modelAccess,
    // The switch is said in the turn, where the person reads the answer.
    onFailover: (event) =>
      turns.stream(event.sandboxId)?.emit({
        type: "notice",
        level: "warn",
        text: `${event.from.provider}/${event.from.model} failed (${event.reason}); answering with ${event.to.provider}/${event.to.model}.`,
      }),
    // A model call over budget is refused, and that refusal becomes the turn's error.
    admit: async (call) => {
      const refusal = await budgets.admit(call);
      if (refusal) turns.stream(call.sandboxId)?.fail(budgetError(refusal));
      return refusal;
    },
  });
  startup.onFailure(() => egress.close());

  startup.progress(`checking the ${config.sandbox.driver} sandbox driver`);
  const driver = await selectDriver({
    config,
    dataDir,
    log,
    caBundlePath: egress.caBundlePath,
    worker: opts.worker,
    packages: domain.packages.mounts(),
  });
  startup.onFailure(() => driver.driver.close());
  domain.sandboxTier.settle(driver.driver.name);
  // Several gateways may share a Redis store: each sandbox runs on one of them at a time.
  const placement =
    store.kind === "redis"
      ? new SandboxPlacement({
          locks: store.locks,
          kv: store.kv,
          owner: instanceId,
          leaseMs: config.cluster.lease,
          log: log.child({ component: "placement" }),
        })
      : undefined;
  placement?.start();
  startup.onFailure(() => placement?.close());
  const volumes = volumeBackend(config, dataDir, log);
  const sandboxes = new SandboxManager({
    volumes,
    driver: driver.driver,
    egress: egress.binder,
    kv: store.kv,
    dataDir,
    volumesRoot: volumesRoot(config, dataDir),
    snapshotsRoot: snapshotsRoot(config, dataDir),
    ...(placement
      ? {
          placement,
          control: new SandboxControl({
            pubsub: store.pubsub,
            owner: instanceId,
            log: log.child({ component: "sandbox-control" }),
          }),
        }
      : {}),
    limits: {
      memoryMb: config.sandbox.memory_mb,
      cpus: config.sandbox.cpus,
      pids: config.sandbox.pids,
      diskMb: config.sandbox.disk_mb,
    },
    idleTimeoutMs: config.sandbox.idle_timeout,
    env: driver.workerEnv,
    log,
    owner: instanceId,
    audit: (entry) => audit.record(entry),
    skillsDirFor: (id) => opts.skillViews.ensure(id),
    removeSkillsDir: (id) => opts.skillViews.remove(id),
  });
  // Several gateways: operators' stop/reset/erase of a sandbox running here, asked on another gateway.
  await sandboxes.serveControl();
  // stdio MCP servers: listed and run by the worker inside the person's sandbox (mcp/stdio.ts).
  if (Object.values(config.mcp).some((s) => s.command !== undefined)) {
    const stdio = new StdioMcpTools({
      config,
      mcp: domain.mcp.service,
      sandboxes,
      tier: domain.sandboxTier,
      audit,
      log: log.child({ component: "mcp" }),
    });
    startup.onFailure(
      gatewayTools.addProvider({
        toolsFor: ({ agent, userKey, turn }) => stdio.toolsFor(agent, userKey, turn),
      }),
    );
  }
  // Earlier messages: a thread's context for each turn, and the channel_history tool.
  const rest = restHistory(conversations);
  const historyFor = (platform: string) =>
    platform === API_PLATFORM ? rest : opts.historyFor(platform);
  const unregisterHistory = gatewayTools.register(
    historyTool({ historyFor, kv: store.kv, pageSize: config.context.page_size, log }),
  );
  startup.onFailure(unregisterHistory);
  const threadContext = new ThreadContext({
    historyFor,
    budget: { maxMessages: config.context.max_messages, maxChars: config.context.max_chars },
    kv: store.kv,
    log,
  });
  const stops = new TurnStops({ store, conversations, turns, audit, log });
  await stops.start();
  startup.onFailure(() => stops.close());
  const runner = new TurnRunner({
    sandboxes,
    conversations,
    contexts: domain.contexts,
    requests,
    turns,
    attempts,
    // Attachments come in through the platform's own file capability, when it has one.
    filesIn: new FilesIn({
      limits: config.files,
      volumeDir: (id) => sandboxes.volumeDir(id),
      blobs: domain.fileBlobs,
      filesFor: (platform) => opts.replySurfaceFor(platform)?.files,
      log,
    }),
    stops,
    replySurfaceFor: opts.replySurfaceFor,
    gatewayTools,
    threadContext,
    // Capability requests link to the settings page opened on exactly that request.
    decorateRequest: async (event, turn) =>
      event.type === "capability_request"
        ? {
            ...event,
            url: await domain.settingsLinks.create(turn.origin, {
              agentId: turn.key.agentId,
              requestId: event.requestId,
            }),
          }
        : event,
    commandReply: (turn) => linkCommandReply({ accounts: domain.accounts }, turn),
    log,
  });
  // An answer reaches the turn that asked, whichever source asked (the worker, a gateway
  // tool); a granted package is forwarded once it is installed (runtime/package-grants.ts).
  await requests.start(
    deliverAfterPackages(
      { requests, packages: domain.packages, sandboxes, turns, log },
      (sandboxId, requestId, answer) => turns.answer(sandboxId, requestId, answer),
    ),
  );
  startup.onFailure(() => requests.stop());
  // Files out: send_file posts through the same capability (REST: a download).
  gatewayTools.register(
    sendFileTool({
      limits: config.files,
      volumeDir: (id) => sandboxes.volumeDir(id),
      filesFor: (platform) => opts.replySurfaceFor(platform)?.files,
      blobs: domain.fileBlobs,
      turns,
    }),
  );
  const dispatcher = new Dispatcher({
    queue: store.queue,
    owner: instanceId,
    maxConcurrent: config.sandbox.max_concurrent,
    leaseMs: config.cluster.lease,
    ...(placement ? { placement } : {}),
    run: (turn, attempt, lease) => runner.run(turn, attempt, lease),
    attempts,
    onDeadLetter: async (claim, reason) => {
      const error = {
        code: "internal" as const,
        message: `Lobu could not process this message: ${reason}`,
      };
      await conversations.appendEvent(claim.id, { type: "error", ...error });
      const message = await conversations.updateMessage(claim.id, {
        status: "error",
        error,
        completedAt: Date.now(),
      });
      // No turn ran to tell a chat sender: say it in their thread (REST senders read the record).
      if (message) {
        await opts
          .replySurfaceFor(message.origin.platform)
          ?.notify(message.origin, `⚠️ ${error.message}`);
      }
      audit.record({
        action: "message.dead_letter",
        actor: "system",
        details: { messageId: claim.id, reason },
      });
    },
    log,
  });
  const stopPackageGc = domain.packages.scheduleGc();
  startup.onFailure(stopPackageGc);
  const retention = new RetentionSweeper({
    config,
    store,
    sandboxes,
    log,
    owner: instanceId,
    ...(opts.retentionClock ? { now: opts.retentionClock } : {}),
  });
  // Read at each metrics collection (a no-op without telemetry).
  const stopGauges = observeGauges(
    {
      queueDepth: () => store.queue.depth(),
      sandboxesByState: () => sandboxes.countsByState(),
    },
    (err) => log.debug({ err }, "a metrics gauge could not be read"),
  );
  startup.onFailure(stopGauges);
  return {
    egress,
    driver,
    sandboxes,
    placement,
    runner,
    dispatcher,
    stops,
    stopPackageGc,
    retention,
    stopGauges,
  };
}
