import type { AgentSessionEvent } from "@earendil-works/pi-coding-agent";
import type { AgentEvent } from "@lobu/core";

const MAX_TOOL_OUTPUT = 4000;

function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] } | undefined)?.content;
  if (!Array.isArray(content)) return "";
  return content
    .filter((c) => c.type === "text" && typeof c.text === "string")
    .map((c) => c.text)
    .join("\n");
}

function clip(text: string): string {
  return text.length > MAX_TOOL_OUTPUT
    ? `${text.slice(0, MAX_TOOL_OUTPUT)}… [${text.length - MAX_TOOL_OUTPUT} more chars]`
    : text;
}

/** Translate pi session events into Lobu agent events (the subset clients care about). */
export function toAgentEvent(event: AgentSessionEvent): AgentEvent | undefined {
  switch (event.type) {
    case "message_update":
      if (event.assistantMessageEvent.type === "text_delta") {
        return { type: "text_delta", text: event.assistantMessageEvent.delta };
      }
      return undefined;
    case "tool_execution_start":
      return {
        type: "tool_call",
        callId: event.toolCallId,
        name: event.toolName,
        input: event.args,
      };
    case "tool_execution_end":
      return {
        type: "tool_result",
        callId: event.toolCallId,
        name: event.toolName,
        output: clip(textOf(event.result)),
        isError: event.isError,
      };
    default:
      return undefined;
  }
}
