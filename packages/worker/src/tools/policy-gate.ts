import type { ToolDefinition } from "@earendil-works/pi-coding-agent";
import type { ToolPolicy } from "@lobu/core";
import type { RequestBroker } from "../requests.ts";

export interface PolicySource {
  policyFor(tool: string): ToolPolicy;
  /** Remember an "always allow" decision for the rest of this session. */
  allowAlways(tool: string): void;
  timeoutMs(): number;
}

function summarize(tool: string, input: unknown): string {
  if (input && typeof input === "object") {
    const obj = input as Record<string, unknown>;
    if (tool === "bash" && typeof obj.command === "string") return `Run: ${obj.command}`;
    if (typeof obj.path === "string") return `${tool} ${obj.path}`;
  }
  return `${tool} ${JSON.stringify(input).slice(0, 300)}`;
}

/**
 * Wrap a tool so that, when policy says "ask", the call pauses on an approval
 * card and only runs after Approve / Always allow. A denial is reported to the
 * model as a failed tool call with a clear reason, so it can tell the user.
 */
export function gateTool<T extends ToolDefinition>(
  tool: T,
  broker: RequestBroker,
  policy: PolicySource,
): T {
  const execute = tool.execute.bind(tool);
  const gated: ToolDefinition = {
    ...tool,
    async execute(toolCallId, params, signal, onUpdate, ctx) {
      const decision = policy.policyFor(tool.name);
      if (decision === "deny") {
        throw new Error(`The ${tool.name} tool is disabled by this agent's policy.`);
      }
      if (decision === "ask") {
        const answer = await broker.ask(
          {
            type: "approval_request",
            tool: tool.name,
            input: params,
            summary: summarize(tool.name, params),
          },
          policy.timeoutMs(),
          signal,
        );
        const choice = answer?.choice;
        if (choice === "always") policy.allowAlways(tool.name);
        if (choice !== "approve" && choice !== "always") {
          const why = answer ? "The user denied this action." : "No approval arrived in time.";
          throw new Error(
            `${why} The ${tool.name} call was not run; do not retry it unless the user asks.`,
          );
        }
      }
      return execute(toolCallId, params, signal, onUpdate, ctx);
    },
  };
  return gated as T;
}
