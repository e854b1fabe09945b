import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach } from "vitest";
import {
  type AnyToolDefinition,
  createVirtualWorkspace,
  type VirtualWorkspace,
  type VirtualWorkspaceOptions,
} from "../../src/virtual/index.ts";

const cleanups: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A fresh host directory, removed after the test. */
export async function tempDir(prefix = "lobu-virtual-"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A workspace over a fresh volume directory, disposed after the test. */
export async function workspace(
  options: Partial<VirtualWorkspaceOptions> = {},
): Promise<VirtualWorkspace & { volumeDir: string }> {
  const volumeDir = options.volumeDir ?? join(await tempDir(), "volume");
  const ws = createVirtualWorkspace({ ...options, volumeDir });
  cleanups.push(() => ws.dispose());
  return ws;
}

export interface ToolRun {
  text: string;
  details: unknown;
  updates: string[];
}

/** Call one of the workspace's tools the way pi's agent loop does (no session context). */
export async function runTool(
  ws: VirtualWorkspace,
  name: string,
  params: Record<string, unknown>,
  signal?: AbortSignal,
): Promise<ToolRun> {
  const tool = ws.tools().find((t: AnyToolDefinition) => t.name === name);
  if (!tool) throw new Error(`no tool ${name}`);
  const updates: string[] = [];
  const result = await tool.execute(
    `call-${name}`,
    params,
    signal,
    (update: { content: Array<{ type: string; text?: string }> }) => {
      for (const part of update.content) if (part.type === "text") updates.push(part.text ?? "");
    },
    undefined as never,
  );
  const text = result.content
    .map((part: { type: string; text?: string }) => (part.type === "text" ? part.text : ""))
    .join("");
  return { text, details: result.details, updates };
}

/** The error message a tool call fails with. */
export async function toolError(
  ws: VirtualWorkspace,
  name: string,
  params: Record<string, unknown>,
  signal?: AbortSignal,
): Promise<string> {
  try {
    await runTool(ws, name, params, signal);
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  throw new Error(`${name} ${JSON.stringify(params)} unexpectedly succeeded`);
}
