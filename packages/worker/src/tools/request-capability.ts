import { defineTool } from "@earendil-works/pi-coding-agent";
import { CapabilityChoice, CapabilityKind, choiceIn, DECISIONS } from "@lobu/core";
import { Type } from "typebox";
import type { RequestBroker } from "../requests.ts";

/**
 * Lets the agent ask for something it lacks (a network domain, a skill, a
 * credential, a Nix package). The user gets a settings link opened on exactly
 * that request; once they approve, the turn continues with it in place (a
 * package once the gateway has installed it; an MCP server from the next
 * message, when the gateway offers its tools).
 */
export function requestCapabilityTool(
  broker: RequestBroker,
  timeoutMs: () => number,
  /** Where this sandbox shows its skills' folders (said when a skill is granted). */
  opts: { skillsDir?: string } = {},
) {
  return defineTool({
    name: "request_capability",
    label: "Request capability",
    description:
      "Ask the user to grant something you need but do not have: kind 'domain' (network access to a host, e.g. api.github.com), 'skill' (a skill by name), 'secret' (a credential by name), 'package' (a program from Nix packages, by attribute name, e.g. jq or ffmpeg; it is installed on your PATH before this tool returns, which can take minutes) or 'mcp' (an MCP server of this installation, by id; once granted its tools are yours from the user's next message, and when it needs the user's own account you get its connect tool). The user approves in their settings page; when this tool returns 'granted', retry what you were doing.",
    promptSnippet:
      "Ask the user to grant a missing network domain, skill, secret, Nix package or MCP server",
    parameters: Type.Object({
      kind: Type.Union(CapabilityKind.options.map((kind) => Type.Literal(kind))),
      value: Type.String({
        description: "What you need, e.g. api.github.com or the skill name",
        maxLength: 200,
      }),
      reason: Type.String({ description: "One sentence on why you need it", maxLength: 500 }),
    }),
    executionMode: "sequential",
    async execute(_id, params, signal) {
      const answer = await broker.ask(
        {
          type: "capability_request",
          kind: params.kind,
          value: params.value,
          reason: params.reason,
        },
        timeoutMs(),
        signal,
      );
      // No choice: nobody answered in time. Anything but a grant is a refusal.
      const choice = choiceIn(CapabilityChoice, answer?.choice);
      const where =
        params.kind === "skill" && opts.skillsDir
          ? ` Your skills directory is ${opts.skillsDir} (read-only).`
          : "";
      const text =
        choice && DECISIONS[choice].grants
          ? `granted: ${params.kind} ${params.value} is now available. Continue with the task.${answer?.text ? `\n\n${answer.text}${where}` : ""}`
          : answer?.choice === undefined
            ? `not granted: the user did not respond in time. Tell the user what you needed (${params.kind} ${params.value}) and stop.`
            : `denied: the user declined ${params.kind} ${params.value}${answer?.text ? ` (${answer.text})` : ""}. Continue without it or explain what cannot be done.`;
      return { content: [{ type: "text", text }], details: undefined };
    },
  });
}
