import {
  ApprovalChoice,
  choiceIn,
  DECISIONS,
  type GatewayToolErrorCode,
  GatewayToolSpec,
  inputDigest,
  LobuError,
  MAX_GATEWAY_TOOL_OUTPUT,
  newId,
  type RequestAnswer,
  type ToolPolicy,
  type WorkerToGateway,
} from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import { effectivePolicy } from "../agents/context.ts";
import type { AgentDefinition, AgentRegistry } from "../agents/registry.ts";
import type { AuditLog } from "../audit/log.ts";
import { type Origin, userKeyOf } from "../domain/origin.ts";
import { approvalEvent, type RequestEvent } from "../domain/requests.ts";
import type { QueuedTurn } from "../domain/turns.ts";
import type { UserSettingsStore } from "../people/user-settings.ts";
import type { WorkerConnection } from "../sandbox/driver.ts";
import { inSpan, turnParent } from "../telemetry/otel.ts";
import type { ActiveTurns } from "./active-turns.ts";
import type { TurnStream } from "./turn-stream.ts";

/**
 * Tools that run in the gateway, outside every sandbox (MCP tool calls and
 * other gateway-side actions build on this). A worker offers them to the model
 * as native tools and forwards each call over the control channel; the
 * gateway — not the worker, which is untrusted — checks that the call comes
 * from the running turn of that sandbox, applies the agent's tool policy with
 * the person's settled answers, asks the person itself when the policy says
 * "ask", and only then runs the tool. A worker that skips its own checks or
 * claims an approval gets nothing it could not get by asking.
 */

/** What a gateway tool learns about the call it runs for. */
export interface GatewayToolContext {
  agentId: string;
  sandboxId: string;
  /** The person whose turn this is (`platform:workspace:user`). */
  userKey: string;
  origin: Origin;
  messageId: string;
  /** The schedule whose run this turn is, when it is one. */
  scheduleId?: string;
  /** Aborted when the turn ends. */
  signal: AbortSignal;
  /**
   * Show the person a request (a capability request, a question) in the
   * turn and wait for the answer; null when none came in time or the turn
   * ended.
   */
  ask(event: RequestEvent): Promise<RequestAnswer | null>;
  /** An info notice in the turn's stream (what a long call is doing). */
  progress(text: string): void;
}

/**
 * A gateway tool that exists for some turns only (an MCP server's tool,
 * offered to the people who have that server), given by a provider per turn.
 * Its input is checked by whoever runs it (a JSON Schema, not zod): the host
 * only requires an object of bounded size.
 */
export interface TurnGatewayTool {
  spec: GatewayToolSpec;
  /** As GatewayToolDefinition.defaultPolicy. */
  defaultPolicy: ToolPolicy;
  execute(input: Record<string, unknown>, ctx: GatewayToolContext): Promise<string>;
}

/** Gives each turn its own gateway tools (registered with GatewayToolHost.addProvider). */
export interface GatewayToolProvider {
  toolsFor(turn: {
    agent: AgentDefinition;
    userKey: string;
    turn: QueuedTurn;
  }): Promise<TurnGatewayTool[]>;
}

export interface GatewayToolDefinition<S extends z.ZodType = z.ZodType> {
  /** Lower case, digits and `_`; not the name of a built-in tool. */
  name: string;
  /** For the model: what the tool does and when to use it. */
  description: string;
  /** The input, an object schema; what runs is exactly what it parsed (and what the person saw). */
  input: S;
  /**
   * The policy when the agent's `[agents.<id>.policy] tools` does not name the
   * tool (default "ask": it acts outside the sandbox). The agent's own default
   * applies when it is stricter.
   */
  defaultPolicy?: ToolPolicy;
  /**
   * Its effect outlives the turn with the person's authority (a schedule runs
   * later as their own message; a memory is read in all their
   * conversations), or deletes what is theirs (forget, cancel_schedule):
   * when other people's words are in the turn's context
   * (TurnStream.othersInContext), its default becomes "ask", so an
   * instruction planted in someone else's message cannot make it act without
   * the sender's click. The agent's own policy for it, and the person's
   * "Always allow", still apply.
   */
  askWhenOthersWrote?: boolean;
  /** Run the call; the text goes back to the model. Throw to report a failure. */
  execute(input: z.output<S>, ctx: GatewayToolContext): Promise<string>;
}

interface Registered {
  def: GatewayToolDefinition;
  spec: GatewayToolSpec;
}

type CallMessage = Extract<WorkerToGateway, { t: "gateway_tool_call" }>;
type Outcome =
  | { ok: true; output: string }
  | { ok: false; code: GatewayToolErrorCode; message: string };

/** Names of the tools every worker has: a gateway tool may not take one. */
const RESERVED = new Set([
  "bash",
  "read",
  "write",
  "edit",
  "grep",
  "find",
  "ls",
  "ask_user",
  "request_capability",
]);
/** Largest input of a provider's tool, as JSON. */
const MAX_TURN_TOOL_INPUT = 100_000;
/** Calls one turn may have in flight at once (pi runs tools one by one; more is a flood). */
const MAX_IN_FLIGHT = 4;
const STRICTNESS: Record<ToolPolicy, number> = { allow: 0, ask: 1, deny: 2 };
/** Gateway tools one turn may be offered (the protocol's limit). */
const MAX_TURN_TOOLS = 128;

export interface GatewayToolHostDeps {
  agents: AgentRegistry;
  userSettings: UserSettingsStore;
  audit: AuditLog;
  log: Logger;
}

/** Where the host finds the turn running on a sandbox (ActiveTurns). */
export type TurnLookup = Pick<ActiveTurns, "stream">;

export class GatewayToolHost {
  readonly #deps: GatewayToolHostDeps;
  readonly #tools = new Map<string, Registered>();
  readonly #served = new WeakSet<WorkerConnection>();
  /** Calls being handled right now, per turn. */
  readonly #inFlight = new WeakMap<TurnStream, number>();
  readonly #providers: GatewayToolProvider[] = [];
  /** The providers' tools of each turn, as offered when it started. */
  readonly #turnTools = new WeakMap<QueuedTurn, Map<string, TurnGatewayTool>>();

  constructor(deps: GatewayToolHostDeps) {
    this.#deps = deps;
  }

  /** Offer a tool to every agent (subject to its policy). Returns a function that removes it. */
  register<S extends z.ZodType>(def: GatewayToolDefinition<S>): () => void {
    const name = GatewayToolSpec.shape.name.safeParse(def.name);
    if (!name.success || RESERVED.has(def.name)) {
      throw new LobuError("invalid_gateway_tool", `"${def.name}" cannot name a gateway tool`, {
        hint: "Use lower case letters, digits and _ (up to 64), and not the name of a built-in tool.",
      });
    }
    if (this.#tools.has(def.name)) {
      throw new LobuError(
        "invalid_gateway_tool",
        `a gateway tool "${def.name}" is already registered`,
      );
    }
    const { $schema: _dialect, ...parameters } = z.toJSONSchema(def.input, {
      io: "input",
      unrepresentable: "any",
    });
    if (parameters.type !== "object") {
      throw new LobuError(
        "invalid_gateway_tool",
        `the input of "${def.name}" must be an object schema`,
      );
    }
    const spec = GatewayToolSpec.parse({
      name: def.name,
      description: def.description,
      parameters,
    });
    const entry: Registered = { def: def as unknown as GatewayToolDefinition, spec };
    this.#tools.set(def.name, entry);
    return () => {
      if (this.#tools.get(def.name) === entry) this.#tools.delete(def.name);
    };
  }

  /** Add tools per turn (MCP servers). Returns a function that removes the provider. */
  addProvider(provider: GatewayToolProvider): () => void {
    this.#providers.push(provider);
    return () => {
      const i = this.#providers.indexOf(provider);
      if (i >= 0) this.#providers.splice(i, 1);
    };
  }

  has(name: string): boolean {
    return this.#tools.has(name);
  }

  names(): string[] {
    return [...this.#tools.keys()];
  }

  /** The agent's policy for a gateway tool before the person's own answers. */
  basePolicy(agent: AgentDefinition, name: string, preferredPolicy?: ToolPolicy): ToolPolicy {
    const own = agent.policy.tools[name];
    if (own) return own;
    const preferred = preferredPolicy ?? this.#tools.get(name)?.def.defaultPolicy ?? "ask";
    const fallback = agent.policy.default;
    return STRICTNESS[fallback] > STRICTNESS[preferred] ? fallback : preferred;
  }

  /** The policy for a gateway tool on a turn of `userKey`: the agent's, with the person's settled "ask". */
  async policyFor(
    agent: AgentDefinition,
    userKey: string,
    name: string,
    preferred?: ToolPolicy,
  ): Promise<ToolPolicy> {
    const settings = await this.#deps.userSettings.get(agent.id, userKey);
    return this.#policyWith(agent, settings.toolPolicy, name, preferred);
  }

  /** policyFor with the person's answers already read. */
  #policyWith(
    agent: AgentDefinition,
    answers: Parameters<typeof effectivePolicy>[1],
    name: string,
    preferred?: ToolPolicy,
  ): ToolPolicy {
    const withBase: AgentDefinition = {
      ...agent,
      policy: {
        ...agent.policy,
        tools: { ...agent.policy.tools, [name]: this.basePolicy(agent, name, preferred) },
      },
    };
    return effectivePolicy(withBase, answers)[name] ?? "ask";
  }

  /** The gateway tools a turn may see (those its policy does not deny). */
  async specsFor(turn: QueuedTurn): Promise<GatewayToolSpec[]> {
    if (this.#tools.size === 0 && this.#providers.length === 0) return [];
    const agent = await this.#deps.agents.forTurn(turn.key.agentId, turn.origin);
    const userKey = userKeyOf(turn.origin);
    // The person's answers are read once for all the tools (a store read each, otherwise).
    const [settings, own] = await Promise.all([
      this.#deps.userSettings.get(agent.id, userKey),
      this.#toolsOfTurn(turn, agent),
    ]);
    const visible = (name: string, preferred?: ToolPolicy) =>
      this.#policyWith(agent, settings.toolPolicy, name, preferred) !== "deny";
    const specs: GatewayToolSpec[] = [];
    for (const [name, { spec }] of this.#tools) if (visible(name)) specs.push(spec);
    for (const [name, tool] of own) {
      if (specs.length >= MAX_TURN_TOOLS) break;
      if (visible(name, tool.defaultPolicy)) specs.push(tool.spec);
    }
    return specs;
  }

  /** The providers' tools of a turn: asked once per turn; a name offered twice is offered for neither. */
  async #toolsOfTurn(
    turn: QueuedTurn,
    agent: AgentDefinition,
  ): Promise<Map<string, TurnGatewayTool>> {
    const known = this.#turnTools.get(turn);
    if (known) return known;
    const tools = new Map<string, TurnGatewayTool>();
    /** Names two tools offered: neither gets them, so no tool takes the calls meant for another. */
    const clashed = new Set<string>();
    const userKey = userKeyOf(turn.origin);
    for (const provider of this.#providers) {
      let offered: TurnGatewayTool[] = [];
      try {
        offered = await provider.toolsFor({ agent, userKey, turn });
      } catch (err) {
        this.#deps.log.warn({ err }, "a gateway tool provider failed: its tools are left out");
      }
      for (const tool of offered) {
        const name = tool.spec.name;
        if (RESERVED.has(name) || this.#tools.has(name) || clashed.has(name)) continue;
        if (!GatewayToolSpec.safeParse(tool.spec).success) continue;
        if (tools.has(name)) {
          tools.delete(name);
          clashed.add(name);
          this.#deps.log.warn({ tool: name }, "two gateway tools share a name: neither is offered");
          continue;
        }
        tools.set(name, tool);
      }
    }
    this.#turnTools.set(turn, tools);
    return tools;
  }

  /**
   * Answer the gateway tool calls arriving on a worker's connection, from now
   * on (once per connection). A call runs only for the turn running on its
   * sandbox (`turns`): named by that turn's id, from this connection, before
   * the turn ended. Every other call is refused, so a call outside any turn
   * gets a refusal rather than silence.
   */
  serve(connection: WorkerConnection, turns: TurnLookup): void {
    if (this.#served.has(connection)) return;
    this.#served.add(connection);
    connection.onMessage((msg) => {
      if (msg.t !== "gateway_tool_call") return;
      void this.#call(connection, turns, msg).catch((err) =>
        this.#deps.log.error({ err, sandboxId: msg.sandboxId }, "gateway tool call failed"),
      );
    });
  }

  async #call(connection: WorkerConnection, turns: TurnLookup, msg: CallMessage): Promise<void> {
    const run = turns.stream(msg.sandboxId);
    const current =
      run && !run.ended && run.connection === connection && run.turnId === msg.turnId
        ? run
        : undefined;
    const outcome = current
      ? await inSpan(
          "lobu.gateway_tool",
          { "lobu.sandbox": msg.sandboxId, "lobu.tool": msg.tool.slice(0, 64) },
          async (span) => {
            const o = await this.#run(current, msg);
            span.setAttribute("lobu.outcome", o.ok ? "ran" : o.code);
            return o;
          },
          // Under the turn's worker span (or the worker's, when it names the turn's trace).
          { parent: turnParent(current.running?.traceparent, msg.traceparent) },
        )
      : ({
          ok: false,
          code: "not_in_turn",
          message: "gateway tools can only be called during the running turn of this sandbox",
        } as const);
    this.#deps.audit.record({
      action: "gateway_tool.call",
      actor: run ? userKeyOf(run.turn.origin) : "worker",
      ...(run ? { agentId: run.turn.key.agentId } : {}),
      sandboxId: msg.sandboxId,
      details: { tool: msg.tool.slice(0, 64), outcome: outcome.ok ? "ran" : outcome.code },
    });
    connection.send({
      t: "gateway_tool_result",
      sandboxId: msg.sandboxId,
      callId: msg.callId,
      ...(outcome.ok
        ? { ok: true, output: outcome.output }
        : { ok: false, error: { code: outcome.code, message: outcome.message } }),
    });
  }

  async #run(run: TurnStream, msg: CallMessage): Promise<Outcome> {
    const tool = this.#tools.get(msg.tool);
    const turnTool = tool ? undefined : this.#turnTools.get(run.turn)?.get(msg.tool);
    if (!tool && !turnTool)
      return {
        ok: false,
        code: "unknown_tool",
        message: `there is no gateway tool "${msg.tool.slice(0, 64)}"`,
      };
    const inFlight = this.#inFlight.get(run) ?? 0;
    if (inFlight >= MAX_IN_FLIGHT)
      return {
        ok: false,
        code: "busy",
        message: "too many gateway tool calls at once; call one at a time",
      };
    this.#inFlight.set(run, inFlight + 1);
    try {
      if (!tool) return await this.#runTurnTool(run, turnTool!, msg.input);
      const parsed = tool.def.input.safeParse(msg.input);
      if (!parsed.success) {
        return {
          ok: false,
          code: "invalid_input",
          message: `invalid input for ${tool.def.name}: ${z.prettifyError(parsed.error).slice(0, 2000)}`,
        };
      }
      // What runs is exactly what was parsed and shown; nothing can change it in between.
      const input = deepFreeze(structuredClone(parsed.data));
      const agent = await this.#deps.agents.forTurn(run.turn.key.agentId, run.turn.origin);
      const policy = await this.policyFor(
        agent,
        userKeyOf(run.turn.origin),
        tool.def.name,
        tool.def.askWhenOthersWrote && run.othersInContext ? "ask" : undefined,
      );
      if (policy === "deny")
        return {
          ok: false,
          code: "denied_by_policy",
          message: `The ${tool.def.name} tool is disabled by this agent's policy.`,
        };
      if (policy === "ask") {
        const answer = await this.#ask(run, tool.def.name, input);
        const choice = choiceIn(ApprovalChoice, answer?.choice);
        if (!choice || !DECISIONS[choice].grants) {
          return {
            ok: false,
            code: "not_approved",
            message: `${answer ? `The user denied this action${answer.text ? ` (${answer.text})` : ""}.` : "No approval arrived in time."} The ${tool.def.name} call was not run; do not retry it unless the user asks.`,
          };
        }
        if (answer?.inputDigest !== inputDigest(input))
          return { ok: false, code: "not_approved", message: "the approval was for another input" };
      }
      if (run.ended)
        return {
          ok: false,
          code: "not_in_turn",
          message: "the turn ended before the call could run",
        };
      const output = await tool.def.execute(input, this.#context(run, agent.id));
      return { ok: true, output: String(output).slice(0, MAX_GATEWAY_TOOL_OUTPUT) };
    } catch (err) {
      return {
        ok: false,
        code: "tool_failed",
        message: `${msg.tool.slice(0, 64)} failed: ${(err as Error).message ?? String(err)}`.slice(
          0,
          2000,
        ),
      };
    } finally {
      this.#inFlight.set(run, (this.#inFlight.get(run) ?? 1) - 1);
    }
  }

  /** A provider's tool: the same policy, approval and end-of-turn checks, on an object input. */
  async #runTurnTool(run: TurnStream, tool: TurnGatewayTool, raw: unknown): Promise<Outcome> {
    const name = tool.spec.name;
    if (!raw || typeof raw !== "object" || Array.isArray(raw))
      return {
        ok: false,
        code: "invalid_input",
        message: `the input of ${name} must be an object`,
      };
    if (JSON.stringify(raw).length > MAX_TURN_TOOL_INPUT)
      return { ok: false, code: "invalid_input", message: `the input of ${name} is too large` };
    const input = deepFreeze(structuredClone(raw)) as Record<string, unknown>;
    const agent = await this.#deps.agents.require(run.turn.key.agentId);
    const policy = await this.policyFor(
      agent,
      userKeyOf(run.turn.origin),
      name,
      tool.defaultPolicy,
    );
    if (policy === "deny")
      return {
        ok: false,
        code: "denied_by_policy",
        message: `The ${name} tool is disabled by this agent's policy.`,
      };
    if (policy === "ask") {
      const answer = await this.#ask(run, name, input);
      const choice = choiceIn(ApprovalChoice, answer?.choice);
      if (!choice || !DECISIONS[choice].grants)
        return {
          ok: false,
          code: "not_approved",
          message: `${answer ? "The user denied this action." : "No approval arrived in time."} The ${name} call was not run; do not retry it unless the user asks.`,
        };
      if (answer?.inputDigest !== inputDigest(input))
        return { ok: false, code: "not_approved", message: "the approval was for another input" };
    }
    if (run.ended)
      return {
        ok: false,
        code: "not_in_turn",
        message: "the turn ended before the call could run",
      };
    const output = await tool.execute(input, this.#context(run, agent.id));
    return { ok: true, output: String(output).slice(0, MAX_GATEWAY_TOOL_OUTPUT) };
  }

  #context(run: TurnStream, agentId: string): GatewayToolContext {
    return {
      agentId,
      sandboxId: run.sandboxId,
      userKey: userKeyOf(run.turn.origin),
      origin: run.turn.origin,
      messageId: run.turn.messageId,
      ...(run.turn.scheduleId ? { scheduleId: run.turn.scheduleId } : {}),
      signal: run.signal,
      ask: (event) => this.#request(run, event),
      progress: (text) => {
        if (!run.ended) run.emit({ type: "notice", level: "info", text: text.slice(0, 500) });
      },
    };
  }

  async #request(run: TurnStream, event: RequestEvent): Promise<RequestAnswer | null> {
    let settle!: (answer: RequestAnswer | null) => void;
    const answered = new Promise<RequestAnswer | null>((resolve) => {
      settle = resolve;
    });
    await run.ask(event, settle);
    return answered;
  }

  /** Ask the person, the same way as any approval card; null when nobody answered in time. */
  #ask(run: TurnStream, tool: string, input: unknown): Promise<RequestAnswer | null> {
    return this.#request(run, approvalEvent(newId("rq"), tool, input));
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
