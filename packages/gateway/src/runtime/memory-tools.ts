import { z } from "zod";
import { MAX_RECALL, type MemoryEntry, type MemoryStore } from "../people/memory.ts";
import type { GatewayToolDefinition, GatewayToolHost } from "./gateway-tools.ts";
import { withHint } from "./tool-errors.ts";

/**
 * The `remember`, `recall` and `forget` gateway tools: the person's long-term
 * memory with this agent (people/memory.ts). Every call acts on the memory of
 * the turn's person — the sender of the message, also in a sandbox a channel
 * shares — so one person's turn never reads or changes another's.
 */

export interface MemoryToolDeps {
  memory: Pick<MemoryStore, "add" | "search" | "remove" | "limits">;
}

export function memoryTools(d: MemoryToolDeps) {
  const RememberInput = z.strictObject({
    text: z
      .string()
      .max(
        d.memory.limits.maxEntryChars,
        `a memory is at most ${d.memory.limits.maxEntryChars} characters; save one short fact per entry`,
      )
      .describe(
        "One fact or preference about the person, self-contained (e.g. 'Prefers answers in German').",
      ),
  });
  const remember: GatewayToolDefinition<typeof RememberInput> = {
    name: "remember",
    description:
      "Save a lasting fact or preference about the person (their name, role, time zone, how they like answers). It is kept across all their conversations with you; do not save secrets or passwords.",
    input: RememberInput,
    defaultPolicy: "allow",
    // Read in all the person's conversations: others' words in the context may not plant one unasked.
    askWhenOthersWrote: true,
    async execute(input, ctx) {
      const entry = await withHint(() =>
        d.memory.add(ctx.agentId, ctx.userKey, input.text, {
          platform: ctx.origin.platform,
          channelId: ctx.origin.channelId,
        }),
      );
      return `Remembered (${entry.id}).`;
    },
  };

  const RecallInput = z.strictObject({
    query: z
      .string()
      .max(500)
      .describe("Keywords to look for; empty for the most recent memories."),
    limit: z.number().int().min(1).max(MAX_RECALL).optional().describe("How many (default 10)."),
  });
  const recall: GatewayToolDefinition<typeof RecallInput> = {
    name: "recall",
    description:
      "Search what you remembered about the person (facts and preferences saved with remember), by keywords.",
    input: RecallInput,
    defaultPolicy: "allow",
    async execute(input, ctx) {
      const found = await d.memory.search(ctx.agentId, ctx.userKey, input.query, input.limit);
      if (found.length === 0) return "Nothing remembered matches.";
      return found.map(line).join("\n");
    },
  };

  const ForgetInput = z.strictObject({
    id: z.string().max(64).describe("The memory's id (mem_...), from recall."),
  });
  const forget: GatewayToolDefinition<typeof ForgetInput> = {
    name: "forget",
    description: "Delete one memory by id (when the person asks, or it is no longer true).",
    input: ForgetInput,
    defaultPolicy: "allow",
    // Deletes the person's own data: not at the word of someone else's message.
    askWhenOthersWrote: true,
    async execute(input, ctx) {
      if (!(await d.memory.remove(ctx.agentId, ctx.userKey, input.id)))
        throw new Error(`there is no memory ${input.id}; recall shows them`);
      return `Forgot ${input.id}.`;
    },
  };

  return { remember, recall, forget };
}

/** Register the memory tools; returns a function that removes them. */
export function registerMemoryTools(host: GatewayToolHost, d: MemoryToolDeps): () => void {
  const tools = memoryTools(d);
  const undo = [
    host.register(tools.remember),
    host.register(tools.recall),
    host.register(tools.forget),
  ];
  return () => {
    for (const u of undo) u();
  };
}

function line(e: MemoryEntry): string {
  return `- ${e.id} (saved ${new Date(e.updatedAt).toISOString().slice(0, 10)}): ${e.text}`;
}
