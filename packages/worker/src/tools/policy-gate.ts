import type { ToolDefinition } from "@earendil-works/pi-coding-agent";
import { ApprovalChoice, choiceIn, DECISIONS, inputDigest, type ToolPolicy } from "@lobu/core";
import type { RequestBroker } from "../requests.ts";

export interface PolicySource {
  policyFor(tool: string): ToolPolicy;
  /** Remember an "always allow" decision for the rest of this session. */
  allowAlways(tool: string): void;
  timeoutMs(): number;
}

/**
 * Wrap a tool so that, when policy says "ask", the call pauses on an approval
 * card and only runs after Approve / Always allow. A denial is reported to the
 * model as a failed tool call with a clear reason, so it can tell the user.
 *
 * The card shows what the gateway derives from `input` (these exact params);
 * the answer carries the digest of what was shown, and the call runs only if
 * its params still have that digest. For tools that run in the sandbox this
 * is a guard for the user, not a boundary: the agent's own code can run
 * anything the sandbox allows without asking (docs/security.md).
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
        const digest = inputDigest(params);
        const answer = await broker.ask(
          { type: "approval_request", tool: tool.name, input: params },
          policy.timeoutMs(),
          signal,
        );
        const choice = choiceIn(ApprovalChoice, answer?.choice);
        if (!choice || !DECISIONS[choice].grants) {
          const why = answer
            ? `The user denied this action${answer.text ? ` (${answer.text})` : ""}.`
            : "No approval arrived in time.";
          throw new Error(
            `${why} The ${tool.name} call was not run; do not retry it unless the user asks.`,
          );
        }
        if (answer?.inputDigest !== digest || inputDigest(params) !== digest) {
          throw new Error(
            `The approval was for a different ${tool.name} input than this call has, so it was not run.`,
          );
        }
        if (choice === "always") policy.allowAlways(tool.name);
      }
      return execute(toolCallId, params, signal, onUpdate, ctx);
    },
  };
  return gated as T;
}
