import { Hono } from "hono";
import { z } from "zod";
import { jsonBody } from "../http/errors.ts";
import { notFound } from "../http/refusals.ts";
import type { MemoryEntry, MemoryStore } from "../people/memory.ts";
import {
  auditChange,
  type PersonDeps,
  type SettingsContext,
  type SettingsEnv,
  type SettingsHandler,
} from "./person.ts";

/** What the memory routes use. */
export interface MemorySettingsDeps {
  memory: Pick<MemoryStore, "list" | "add" | "edit" | "remove" | "limits">;
  audit: PersonDeps["audit"];
}

/** The text of an entry (its length is checked against the operator's limit by the store). */
const EntryText = z.strictObject({ text: z.string().max(16_384) });

/**
 * `/memory`: what the agent remembers about the person, shown to them alone
 * (the session's person and agent); they can add, edit and delete entries.
 * Audit records name the entry, never its text.
 */
export function memoryRoutes(d: MemorySettingsDeps): Hono<SettingsEnv> {
  const r = new Hono<SettingsEnv>();
  r.get("/memory", (c) => memoryView(d, c));
  r.post("/memory", addEntry(d));
  r.put("/memory/:id", editEntry(d));
  r.delete("/memory/:id", deleteEntry(d));
  return r;
}

async function memoryView(d: MemorySettingsDeps, c: SettingsContext): Promise<Response> {
  const { agentId, userKey } = c.get("session");
  const entries = await d.memory.list(agentId, userKey);
  return c.json({
    entries: entries.map(entryView),
    limits: {
      maxEntries: d.memory.limits.maxEntries,
      maxEntryChars: d.memory.limits.maxEntryChars,
    },
  });
}

function entryView(e: MemoryEntry) {
  return {
    id: e.id,
    text: e.text,
    createdAt: new Date(e.createdAt).toISOString(),
    updatedAt: new Date(e.updatedAt).toISOString(),
    ...(e.source ? { source: e.source } : {}),
  };
}

function addEntry(d: MemorySettingsDeps): SettingsHandler {
  return async (c) => {
    const { agentId, userKey } = c.get("session");
    const { text } = await jsonBody(c, EntryText);
    const entry = await d.memory.add(agentId, userKey, text);
    auditChange(d, c, "memory_added", { memoryId: entry.id });
    return memoryView(d, c);
  };
}

function editEntry(d: MemorySettingsDeps): SettingsHandler {
  return async (c) => {
    const { agentId, userKey } = c.get("session");
    const id = c.req.param("id") ?? "";
    const { text } = await jsonBody(c, EntryText);
    if (!(await d.memory.edit(agentId, userKey, id, text)))
      throw notFound(`you have no memory "${id.slice(0, 64)}"`);
    auditChange(d, c, "memory_edited", { memoryId: id });
    return memoryView(d, c);
  };
}

function deleteEntry(d: MemorySettingsDeps): SettingsHandler {
  return async (c) => {
    const { agentId, userKey } = c.get("session");
    const id = c.req.param("id") ?? "";
    if (!(await d.memory.remove(agentId, userKey, id)))
      throw notFound(`you have no memory "${id.slice(0, 64)}"`);
    auditChange(d, c, "memory_deleted", { memoryId: id });
    return memoryView(d, c);
  };
}
