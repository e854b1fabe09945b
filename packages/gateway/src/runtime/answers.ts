import { isLobuError, type LobuConfig, LobuError, type RequestAnswer } from "@lobu/core";
import type { AgentRegistry } from "../agents/registry.ts";
import type { AuditLog } from "../audit/log.ts";
import { userKeyOf } from "../conversations/inbound.ts";
import type { UserSettingsStore } from "../settings/user-settings.ts";
import { userDomain } from "../settings/validate.ts";
import type { SkillCatalog } from "../skills/catalog.ts";
import type { Answerer, PendingRequest, RequestRegistry } from "./requests.ts";

export interface AnswerDeps {
  config: LobuConfig;
  agents: AgentRegistry;
  requests: RequestRegistry;
  userSettings: UserSettingsStore;
  skills: SkillCatalog;
  audit: AuditLog;
}

/**
 * Apply what a granted capability request asked for to the requester's own
 * settings, so the agent has it as soon as the turn resumes. Returns text the
 * agent receives with the grant (a skill's instructions).
 */
export async function applyGrant(
  deps: Pick<AnswerDeps, "config" | "agents" | "userSettings" | "skills">,
  request: PendingRequest,
): Promise<string | undefined> {
  const event = request.event;
  if (event.type !== "capability_request") return undefined;
  const userKey = userKeyOf(request.origin);
  const add = (list: string[], value: string) => (list.includes(value) ? list : [...list, value]);
  switch (event.kind) {
    case "domain": {
      // The same rules as the settings page: no "*", no whole TLDs, nothing an admin denied.
      const agent = await deps.agents.get(request.agentId);
      const domain = userDomain(event.value, [
        ...deps.config.network.deny,
        ...(agent?.network.deny ?? []),
      ]);
      await deps.userSettings.update(request.agentId, userKey, (s) => ({
        ...s,
        domains: add(s.domains, domain),
      }));
      return undefined;
    }
    case "skill": {
      const skill = deps.skills.get(event.value);
      if (!skill) {
        throw new LobuError(
          "invalid_grant",
          `there is no skill "${event.value}" in this installation`,
          {
            status: 400,
            hint: "Skills are declared under [skills.*] in lobu.toml.",
          },
        );
      }
      await deps.userSettings.update(request.agentId, userKey, (s) => ({
        ...s,
        skills: add(s.skills, skill.name),
      }));
      return `Skill "${skill.name}" installed. Its instructions:\n${skill.instructions}`;
    }
    case "package":
      await deps.userSettings.update(request.agentId, userKey, (s) => ({
        ...s,
        packages: add(s.packages, event.value),
      }));
      return "The package is added to the environment and will be available from the next session start.";
    case "mcp":
      await deps.userSettings.update(request.agentId, userKey, (s) => ({
        ...s,
        mcp: add(s.mcp, event.value),
      }));
      return undefined;
    case "secret":
      // A secret's value is entered in the settings page, never through an answer.
      return undefined;
  }
}

/**
 * Answer a question, approval or capability request, with its side effects:
 * "Always allow" is remembered in the person's settings, a granted capability is
 * applied before the agent resumes, and every decision is audited.
 */
export async function answerRequest(
  deps: AnswerDeps,
  requestId: string,
  answer: RequestAnswer,
  by: Answerer & { actor: string },
): Promise<{ ok: true; request: PendingRequest } | { ok: false; reason: string; status: number }> {
  const pending = await deps.requests.get(requestId);
  if (!pending) return { ok: false, reason: "unknown or expired request", status: 404 };
  let text = answer.text;
  if (pending.status === "pending" && (by.admin || by.userKey === userKeyOf(pending.origin))) {
    if (pending.event.type === "capability_request" && answer.choice === "granted") {
      try {
        text = (await applyGrant(deps, pending)) ?? text;
      } catch (err) {
        if (!isLobuError(err)) throw err;
        // The grant cannot be applied (e.g. "*"): resolve it as denied so the agent
        // is not left waiting, and tell the person why.
        await deps.requests.answer(
          requestId,
          { choice: "denied", text: `The grant was refused: ${err.message}` },
          by,
        );
        return {
          ok: false,
          reason: err.hint ? `${err.message}. ${err.hint}` : err.message,
          status: err.status,
        };
      }
    }
    if (pending.event.type === "approval_request" && answer.choice === "always") {
      const tool = pending.event.tool;
      await deps.userSettings.update(pending.agentId, userKeyOf(pending.origin), (s) => ({
        ...s,
        toolPolicy: { ...s.toolPolicy, [tool]: "allow" },
      }));
    }
  }
  const result = await deps.requests.answer(
    requestId,
    { ...answer, ...(text ? { text } : {}) },
    by,
  );
  if (result.ok) {
    deps.audit.record({
      action: `${result.request.event.type}.answered`,
      actor: by.actor,
      agentId: result.request.agentId,
      sandboxId: result.request.sandboxId,
      details: {
        requestId,
        choice: answer.choice,
        ...(result.request.event.type === "approval_request"
          ? { tool: result.request.event.tool }
          : {}),
        ...(result.request.event.type === "capability_request"
          ? { kind: result.request.event.kind, value: result.request.event.value }
          : {}),
      },
    });
  }
  return result;
}
