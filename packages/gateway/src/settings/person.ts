import { LobuError } from "@lobu/core";
import type { Context, Handler } from "hono";
import { z } from "zod";
import { personActor } from "../access/actors.ts";
import type { SettingsSession } from "../access/web-sessions.ts";
import type { AgentDefinition, AgentRegistry } from "../agents/registry.ts";
import type { AuditLog } from "../audit/log.ts";
import type { UserAgentSettings } from "../people/user-settings.ts";
import type { SecretRef } from "../secrets/store.ts";
import { buildView, type SettingsViewDeps } from "./view.ts";

/**
 * What every route of a person's settings API shares: the session it runs
 * in, the agent it is for, the audit record of a change, the change itself,
 * and the page's view that every change answers with.
 */

/** The settings API's routes run in a person's session (access/session-auth.ts puts it there). */
export type SettingsEnv = { Variables: { session: SettingsSession } };
export type SettingsContext = Context<SettingsEnv>;
export type SettingsHandler = Handler<SettingsEnv>;

/** What a person's settings routes use. */
export interface PersonDeps extends SettingsViewDeps {
  agents: Pick<AgentRegistry, "require">;
  audit: Pick<AuditLog, "record">;
}

/** A secret's value (a provider key, or another secret the agent asked for). */
export const SecretValue = z.strictObject({ value: z.string().min(1).max(16_384) });

/** Most domains (or packages, ...) one person may add for one agent. */
const MAX_LIST = 200;

export function agentOf(d: PersonDeps, c: SettingsContext): Promise<AgentDefinition> {
  return d.agents.require(c.get("session").agentId);
}

/** Audit a change the person made (`settings.<action>`), as them. */
export function auditChange(
  d: Pick<PersonDeps, "audit">,
  c: SettingsContext,
  action: string,
  details: Record<string, unknown>,
): void {
  const session = c.get("session");
  d.audit.record({
    action: `settings.${action}`,
    actor: personActor(session),
    agentId: session.agentId,
    details,
  });
}

/** Change the person's own settings for the session's agent. */
export function updateSettings(
  d: Pick<PersonDeps, "userSettings">,
  c: SettingsContext,
  change: (cur: UserAgentSettings) => UserAgentSettings,
): Promise<UserAgentSettings> {
  const session = c.get("session");
  return d.userSettings.update(session.agentId, session.userKey, change);
}

/** The page's view of the person's settings (every change answers with it). */
export async function viewOf(d: PersonDeps, c: SettingsContext): Promise<Response> {
  return c.json(await buildView(d, c.get("session"), await agentOf(d, c)));
}

/** One of the person's own secrets for the session's agent. */
export function ownSecret(c: SettingsContext, name: string): SecretRef {
  const session = c.get("session");
  return { scope: { kind: "user", agentId: session.agentId, userKey: session.userKey }, name };
}

/** A setting that cannot be made (unknown, or over a limit): 400. */
export function invalidSetting(message: string, hint?: string): LobuError {
  return new LobuError("invalid_setting", message, { status: 400, ...(hint ? { hint } : {}) });
}

/** `list` with `value` added; lists grow one entry per request, so they are bounded. */
export function addTo(list: string[], value: string, what = "entries"): string[] {
  if (list.includes(value)) return list;
  if (list.length >= MAX_LIST)
    throw invalidSetting(`at most ${MAX_LIST} ${what}`, `Remove ${what} you no longer need first.`);
  return [...list, value];
}

export function removeFrom(list: string[], value: string): string[] {
  return list.filter((x) => x !== value);
}
