import type { Logger } from "pino";
import { z } from "zod";

/**
 * What an MCP server lists is untrusted — a remote server, or a worker
 * reporting its sandbox's stdio server — and becomes native tools of the
 * model. Only well-formed tools are kept, each name once (the first), each
 * input schema bounded, at most MAX_TOOLS of them.
 */

/** Tools one server may offer; more are left out (with a warning). */
export const MAX_TOOLS = 200;
/** Largest JSON Schema of one tool's input. */
const MAX_SCHEMA_CHARS = 20_000;

export const ListedTool = z.object({
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/),
  title: z.string().optional(),
  description: z.string().optional(),
  annotations: z.object({ title: z.string().optional() }).loose().optional(),
  inputSchema: z
    .looseObject({ type: z.literal("object") })
    .refine((s) => JSON.stringify(s).length <= MAX_SCHEMA_CHARS, "input schema too large"),
});
export type ListedTool = z.infer<typeof ListedTool>;

export function boundedTools(serverId: string, raw: readonly unknown[], log: Logger): ListedTool[] {
  const seen = new Set<string>();
  const out: ListedTool[] = [];
  let dropped = 0;
  for (const item of raw) {
    const parsed = ListedTool.safeParse(item);
    if (!parsed.success || seen.has(parsed.data.name) || out.length >= MAX_TOOLS) {
      dropped++;
      continue;
    }
    seen.add(parsed.data.name);
    out.push(parsed.data);
  }
  if (dropped)
    log.warn(
      { serverId, dropped },
      `MCP server listed invalid, repeated or more than ${MAX_TOOLS} tools: left out`,
    );
  return out;
}
