import { defineTool } from "@earendil-works/pi-coding-agent";
import { Type } from "typebox";
import type { RequestBroker } from "../requests.ts";

/** Lets the agent pause for a button answer from the user (rendered natively per platform). */
export function askUserTool(broker: RequestBroker, timeoutMs: () => number) {
  return defineTool({
    name: "ask_user",
    label: "Ask user",
    description:
      "Ask the user a question with a few short answer options (shown as buttons in their chat) and wait for the answer. Use it when you need a decision or confirmation from the user before continuing.",
    promptSnippet: "Ask the user a multiple-choice question and wait for the answer",
    parameters: Type.Object({
      question: Type.String({ description: "The question, one or two sentences" }),
      options: Type.Array(Type.String({ maxLength: 60 }), {
        description: "2 to 6 short answer options",
        minItems: 1,
        maxItems: 6,
      }),
    }),
    executionMode: "sequential",
    async execute(_id, params, signal) {
      const options = params.options.map((label, i) => ({ id: `o${i}`, label }));
      const answer = await broker.ask(
        { type: "question", prompt: params.question, options, allowText: true },
        timeoutMs(),
        signal,
      );
      if (!answer) {
        return {
          content: [{ type: "text", text: "The user did not answer in time." }],
          details: undefined,
        };
      }
      const picked =
        options.find((o) => o.id === answer.choice)?.label ?? answer.text ?? answer.choice ?? "";
      return {
        content: [{ type: "text", text: `The user answered: ${picked}` }],
        details: undefined,
      };
    },
  });
}
