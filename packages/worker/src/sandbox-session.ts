import { mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  type AgentSession,
  createAgentSession,
  SessionManager,
  SettingsManager,
  type ToolDefinition,
} from "@earendil-works/pi-coding-agent";
import type { AgentEvent, ToolPolicy, TurnContext, TurnImage, WorkerToGateway } from "@lobu/core";
import { skipUnobservedContextCopy } from "./context-copy.ts";
import { toAgentEvent } from "./events.ts";
import { TurnJournal } from "./journal.ts";
import {
  freshModelRuntimes,
  type ModelRuntimeSource,
  type SessionModel,
} from "./model-runtimes.ts";
import { RequestBroker } from "./requests.ts";
import { staticResourceLoader } from "./resources.ts";
import { askUserTool } from "./tools/ask-user.ts";
import { type GatewayToolOutcome, gatewayTool } from "./tools/gateway-tools.ts";
import { gateTool } from "./tools/policy-gate.ts";
import { requestCapabilityTool } from "./tools/request-capability.ts";
import type { Workspace } from "./workspace.ts";

/** What a turn ends with: the `turn_end` message without its addressing. */
export type TurnOutcome = Pick<
  Extract<WorkerToGateway, { t: "turn_end" }>,
  "status" | "text" | "error"
>;

export interface SandboxSessionOptions {
  sandboxId: string;
  /** Where the session transcript and journal live (inside the volume). */
  stateDir: string;
  workspace: Workspace;
  /** Base URL of the gateway endpoint as seen from this worker. */
  gatewayUrl: string;
  /** Environment for the agent's shell (proxy settings); placeholders come per turn. */
  baseEnv: Record<string, string>;
  emit: (turnId: string, event: AgentEvent) => void;
  /** Forward a call of a gateway-side tool, made during turn `turnId`, to the gateway. */
  callGateway: (
    turnId: string,
    tool: string,
    input: unknown,
    signal?: AbortSignal,
    traceparent?: string,
  ) => Promise<GatewayToolOutcome>;
  /** Where a session's pi model runtime comes from (default: made when the session is built). */
  modelRuntimes?: ModelRuntimeSource;
}

/** The sandbox's own state (transcript, journal) cannot be used: the gateway restores a snapshot. */
export class SessionStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SessionStateError";
  }
}

/**
 * The turn's system prompt: the agent's, then each installed skill with its
 * description, its instructions and where its files are (read on demand).
 */
export function systemPromptFor(ctx: TurnContext, skillsDir?: string): string {
  const parts = [ctx.systemPrompt.trim()];
  if (ctx.skills.length) {
    parts.push("# Installed skills");
    const withFiles = skillsDir && ctx.skills.some((s) => s.files);
    if (withFiles)
      parts.push(
        `A skill's folder is read-only at ${skillsDir}/<name>/: its SKILL.md and the files it ships (scripts, references, templates). Read a file when the skill's instructions name it; paths in them are relative to that folder.`,
      );
    for (const s of ctx.skills) {
      const lines = [`## ${s.name}${s.description ? ` — ${s.description}` : ""}`];
      if (s.files && skillsDir) lines.push(`Files: ${skillsDir}/${s.name}/`);
      if (s.secrets.length)
        lines.push(
          `Secrets it uses (environment variables): ${s.secrets.join(", ")}. If one is not set, ask for it with request_capability (kind "secret").`,
        );
      lines.push(s.instructions.trim());
      parts.push(lines.filter(Boolean).join("\n"));
    }
  }
  return parts.filter(Boolean).join("\n\n");
}

/**
 * What forces a new pi session object (the transcript itself always continues).
 * Not the model's key: the gateway issues a new relay placeholder every turn, and
 * a session only needs it handed over (see `rekey`).
 */
function signatureOf(ctx: TurnContext, skillsDir?: string): string {
  const { apiKey: _perTurn, ...model } = ctx.model;
  return JSON.stringify([
    model,
    ctx.tools,
    systemPromptFor(ctx, skillsDir),
    Object.keys(ctx.toolPolicy).sort(),
    ctx.gatewayTools ?? [],
  ]);
}

/**
 * One sandbox's agent: a pi AgentSession whose transcript persists in the
 * volume, run one turn at a time. Turns are idempotent per message id (see
 * TurnJournal).
 */
export class SandboxSession {
  private readonly opts: SandboxSessionOptions;
  private readonly journal: TurnJournal;
  private session: AgentSession | undefined;
  /** The pi model runtime the session runs on: given back when pi's state goes. */
  private model: SessionModel | undefined;
  private signature = "";
  /** Gives the session's model this turn's key and trace context. */
  private rekey: ((apiKey: string) => Promise<void>) | undefined;
  private current: TurnContext | undefined;
  private currentTurn: string | undefined;
  /** The running turn's W3C trace context: sent on its model calls and gateway tool calls. */
  private currentTrace: string | undefined;
  /** A cancel that came while its turn was still being set up (before it ran). */
  private cancelledEarly: string | undefined;
  private readonly alwaysAllowed = new Set<string>();
  readonly broker: RequestBroker;
  lastActive = Date.now();

  constructor(opts: SandboxSessionOptions) {
    this.opts = opts;
    try {
      mkdirSync(opts.stateDir, { recursive: true });
    } catch (err) {
      throw new SessionStateError(
        `the agent's state directory is unusable: ${(err as Error).message}`,
      );
    }
    this.journal = new TurnJournal(join(opts.stateDir, "turns.json"));
    this.broker = new RequestBroker((event) => {
      if (this.currentTurn) this.opts.emit(this.currentTurn, event);
    });
  }

  get busy(): boolean {
    return this.currentTurn !== undefined;
  }

  /** Whether pi's state (runtime, tools, transcript in memory) is held (see release). */
  get holdsState(): boolean {
    return this.session !== undefined;
  }

  private policyFor(tool: string): ToolPolicy {
    if (this.alwaysAllowed.has(tool)) return "allow";
    const policy = this.current?.toolPolicy ?? {};
    return policy[tool] ?? policy["*"] ?? "allow";
  }

  private async build(ctx: TurnContext, manager: SessionManager): Promise<AgentSession> {
    const { stateDir, workspace, gatewayUrl, sandboxId } = this.opts;
    // The key comes with each turn: pi keeps it in the runtime's own in-memory store, so
    // there is no auth file to read, lock or write.
    const providerId = `lobu-${ctx.model.provider}`;
    const taken = await this.runtimes.take({
      providerId,
      baseUrl: `${gatewayUrl}${ctx.model.endpoint}`,
      api: ctx.model.api,
      id: ctx.model.id,
      contextWindow: ctx.model.contextWindow,
      maxTokens: ctx.model.maxTokens,
      ...(ctx.model.images !== undefined ? { images: ctx.model.images } : {}),
      ...(ctx.model.compat !== undefined ? { compat: ctx.model.compat } : {}),
    });
    this.model = taken;
    const { runtime: modelRuntime, model, credentials, headers } = taken;
    // The model entry's headers are read by pi per request: the sandbox's name, and the
    // turn's trace context (the gateway strips it), changed in place each turn, since
    // registering again would refresh every provider pi knows.
    headers["x-lobu-sandbox"] = sandboxId;
    this.rekey = async (apiKey) => {
      await credentials.modify(providerId, async () => ({ type: "api_key", key: apiKey }));
      if (this.currentTrace) headers.traceparent = this.currentTrace;
      else delete headers.traceparent;
    };
    await this.rekey(ctx.model.apiKey);

    const policy = {
      policyFor: (tool: string) => this.policyFor(tool),
      allowAlways: (tool: string) => this.alwaysAllowed.add(tool),
      timeoutMs: () =>
        this.current?.requestTimeoutSec ? this.current.requestTimeoutSec * 1000 : 900_000,
    };
    const env = () => ({ ...this.opts.baseEnv, ...(this.current?.env ?? {}) });
    // Tools the policy denies are not shown to the model at all.
    const visible = ctx.tools.filter((t) => this.policyFor(t) !== "deny");
    const tools: ToolDefinition[] = [
      ...workspace.tools(visible, env).map((t) => gateTool(t, this.broker, policy)),
      askUserTool(this.broker, policy.timeoutMs) as unknown as ToolDefinition,
      requestCapabilityTool(this.broker, policy.timeoutMs, {
        skillsDir: workspace.skillsDir,
      }) as unknown as ToolDefinition,
      // Tools that act outside the sandbox: the gateway applies the policy and asks.
      ...(ctx.gatewayTools ?? [])
        .filter((t) => this.policyFor(t.name) !== "deny")
        .map((spec) =>
          gatewayTool(spec, (tool, input, signal) => {
            const turnId = this.currentTurn;
            if (!turnId) throw new Error("no turn is running");
            return this.opts.callGateway(turnId, tool, input, signal, this.currentTrace);
          }),
        ),
    ];
    const { session } = await createAgentSession({
      cwd: workspace.cwd,
      agentDir: join(stateDir, "pi"),
      model,
      thinkingLevel: "off",
      modelRuntime,
      resourceLoader: staticResourceLoader({
        systemPrompt: systemPromptFor(ctx, workspace.skillsDir),
      }),
      noTools: "builtin",
      customTools: tools,
      sessionManager: manager,
      settingsManager: SettingsManager.inMemory({
        compaction: { enabled: true },
        retry: { enabled: true, maxRetries: 2 },
      }),
    });
    skipUnobservedContextCopy(session);
    return session;
  }

  private get runtimes(): ModelRuntimeSource {
    return this.opts.modelRuntimes ?? freshModelRuntimes;
  }

  /**
   * Let go of pi's session, and give its model runtime back for another session —
   * never one a running turn may still call the model with (an unload mid-turn).
   */
  private drop(): void {
    this.session?.dispose();
    this.session = undefined;
    if (this.model && !this.busy) this.runtimes.give(this.model);
    this.model = undefined;
  }

  private openManager(): SessionManager {
    try {
      return SessionManager.continueRecent(
        this.opts.workspace.cwd,
        join(this.opts.stateDir, "sessions"),
      );
    } catch (err) {
      throw new SessionStateError(
        `the conversation transcript cannot be loaded: ${(err as Error).message}`,
      );
    }
  }

  async runTurn(
    turnId: string,
    messageId: string,
    text: string,
    ctx: TurnContext,
    images: TurnImage[] = [],
    traceparent?: string,
  ): Promise<TurnOutcome> {
    this.lastActive = Date.now();
    this.currentTrace = traceparent;
    const previous = this.journal.get(messageId);
    if (previous?.status === "done") {
      // Already answered before a crash lost the acknowledgement: replay, don't re-run.
      return { status: "done", text: previous.text ?? "" };
    }
    this.current = ctx;
    const signature = signatureOf(ctx, this.opts.workspace.skillsDir);
    if (!this.session || signature !== this.signature || previous?.status === "started") {
      const manager = this.session ? this.session.sessionManager : this.openManager();
      this.drop();
      if (previous?.status === "started") {
        // A delivery of this message died mid-turn: rewind so it is not recorded twice.
        // pi writes nothing until a session's first assistant message, so a missing
        // leaf means nothing of the interrupted turn reached the disk either.
        if (previous.leafBefore === null) manager.resetLeaf();
        else if (manager.getEntry(previous.leafBefore)) manager.branch(previous.leafBefore);
      }
      this.session = await this.build(ctx, manager);
      this.signature = signature;
    } else {
      await this.rekey?.(ctx.model.apiKey);
    }
    const session = this.session;
    this.record(messageId, {
      status: "started",
      leafBefore: session.sessionManager.getLeafId(),
      at: Date.now(),
    });
    this.currentTurn = turnId;
    if (this.cancelledEarly === turnId) {
      // Cancelled while it was being set up: it ends before the model is called.
      this.currentTurn = undefined;
      this.cancelledEarly = undefined;
      this.broker.cancelAll();
      return { status: "cancelled", text: "" };
    }
    const unsubscribe = session.subscribe((event) => {
      const mapped = toAgentEvent(event);
      if (mapped) this.opts.emit(turnId, mapped);
    });
    try {
      // Pictures the person attached go to the model with the text (they are also files in the workspace).
      await session.prompt(
        text,
        images.length && ctx.model.images
          ? {
              images: images.map((i) => ({
                type: "image" as const,
                data: i.data,
                mimeType: i.mimeType,
              })),
            }
          : undefined,
      );
      const last = [...session.messages].reverse().find((m) => m.role === "assistant") as
        | { stopReason?: string; errorMessage?: string }
        | undefined;
      if (last?.stopReason === "aborted") return { status: "cancelled", text: "" };
      if (last?.stopReason === "error") {
        return {
          status: "error",
          text: "",
          error: { code: "model_error", message: last.errorMessage ?? "the model request failed" },
        };
      }
      const reply = session.getLastAssistantText() ?? "";
      this.record(messageId, {
        status: "done",
        leafBefore: null,
        text: reply,
        at: Date.now(),
      });
      return { status: "done", text: reply };
    } catch (err) {
      return {
        status: "error",
        text: "",
        error: {
          code: err instanceof SessionStateError ? "state_corrupt" : "agent_error",
          message: (err as Error).message,
        },
      };
    } finally {
      unsubscribe();
      this.currentTurn = undefined;
      this.cancelledEarly = undefined;
      this.broker.cancelAll();
      this.lastActive = Date.now();
    }
  }

  /** Journal a turn; a journal that cannot be written means the sandbox's state is broken. */
  private record(messageId: string, entry: Parameters<TurnJournal["set"]>[1]): void {
    try {
      this.journal.set(messageId, entry);
    } catch (err) {
      throw new SessionStateError(`the turn journal cannot be written: ${(err as Error).message}`);
    }
  }

  /**
   * Stop turn `turnId`: the model call and a running tool are aborted (pi kills
   * a bash command's process group). A cancel for a turn still being set up is
   * kept for it; a late one must not hit the next turn.
   */
  async cancel(turnId: string): Promise<void> {
    if (turnId !== this.currentTurn) {
      this.cancelledEarly = turnId;
      return;
    }
    this.broker.cancelAll();
    await this.session?.abort();
  }

  /**
   * Let go of pi's session (its model runtime, tools and the transcript in memory)
   * while no turn runs: the transcript and journal stay on disk, and the next turn
   * builds the session again from them, as after a wake. What an idle sandbox
   * costs in the pool is then this object, its journal and its workspace.
   */
  release(): boolean {
    if (this.busy || !this.session) return false;
    this.drop();
    // The last turn's context (system prompt, tool specs, placeholders) comes with
    // the next turn again: an idle session in a pool of thousands keeps none of it.
    this.current = undefined;
    this.rekey = undefined;
    this.signature = "";
    return true;
  }

  dispose(): void {
    this.broker.cancelAll();
    this.drop();
    this.opts.workspace.dispose();
  }
}
