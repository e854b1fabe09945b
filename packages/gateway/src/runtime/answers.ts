import {
  ApprovalChoice,
  CapabilityChoice,
  CHOICES_OF,
  isLobuError,
  type LobuConfig,
  LobuError,
  type RequestAnswer,
} from "@lobu/core";
import type { AgentPackages } from "../agents/packages.ts";
import type { AgentRegistry } from "../agents/registry.ts";
import type { AuditLog } from "../audit/log.ts";
import { userKeyOf } from "../domain/origin.ts";
import type { Answerer, PendingRequest } from "../domain/requests.ts";
import type { McpService } from "../mcp/service.ts";
import type { UserSettingsStore } from "../people/user-settings.ts";
import { packageName, secretName, userDomain } from "../people/validate.ts";
import type { SecretStore } from "../secrets/store.ts";
import type { SkillCatalog } from "../skills/catalog.ts";
import type { SkillViews } from "../skills/views.ts";
import type { RequestRegistry } from "./requests.ts";

export interface AnswerDeps {
  config: LobuConfig;
  agents: AgentRegistry;
  requests: RequestRegistry;
  userSettings: UserSettingsStore;
  skills: SkillCatalog;
  /** Puts a granted skill's files into the requester's sandbox before the agent resumes. */
  skillViews?: Pick<SkillViews, "sync">;
  secrets: SecretStore;
  audit: AuditLog;
  /** Nix packages (absent: package grants are refused as not provided). */
  packages?: Pick<AgentPackages, "refusal">;
  /** MCP servers: a granted server is told apart as connected or still to connect. */
  mcp?: Pick<McpService, "status">;
}

export type AnswerResult =
  | { ok: true; request: PendingRequest }
  | { ok: false; reason: string; status: number };

/** answerRequest with its deps bound: what the API, the settings page and the chat platforms get. */
export type AnswerRequest = (
  requestId: string,
  answer: RequestAnswer,
  by: Answerer & { actor: string },
) => Promise<AnswerResult>;

/**
 * Apply what a granted capability request asked for to the requester's own
 * settings, so the agent has it as soon as the turn resumes. Returns text the
 * agent receives with the grant (a skill's instructions).
 */
export async function applyGrant(
  deps: Pick<
    AnswerDeps,
    "config" | "agents" | "userSettings" | "skills" | "skillViews" | "secrets" | "packages" | "mcp"
  >,
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
            hint: "Admins add skills with `lobu skills add` (the project's skills/ folder) or under [skills.*] in lobu.toml.",
          },
        );
      }
      const settings = await deps.userSettings.update(request.agentId, userKey, (s) => ({
        ...s,
        skills: add(s.skills, skill.name),
      }));
      const agent = await deps.agents.get(request.agentId);
      await deps.skillViews?.sync(
        request.sandboxId,
        deps.skills.pick([...(agent?.skills ?? []), ...settings.skills]),
      );
      const files =
        skill.files && deps.skillViews
          ? ` Its files (SKILL.md and what it ships) are in the folder "${skill.name}" of your skills directory, read-only.`
          : "";
      return `Skill "${skill.name}" installed.${files} Its instructions:\n${skill.instructions}`;
    }
    case "package": {
      // Checked like the settings page does; the build itself runs on the gateway that
      // hosts the sandbox, which resolves the request once the package is ready
      // (runtime/package-grants.ts).
      const name = packageName(event.value);
      const refusal = deps.packages
        ? await deps.packages.refusal(name)
        : { kind: "unavailable" as const, reason: "Nix packages are not enabled on this gateway" };
      if (refusal) {
        throw refusal.kind === "unavailable"
          ? new LobuError("not_provisioned", refusal.reason, {
              status: 501,
              hint: `Your agent was told to continue without ${name}.`,
            })
          : new LobuError("invalid_grant", refusal.reason, { status: 400 });
      }
      await deps.userSettings.update(request.agentId, userKey, (s) => ({
        ...s,
        packages: add(s.packages, name),
      }));
      return undefined;
    }
    case "mcp": {
      // Granting adds the server to the person's agent; their own account is
      // connected with the connect link (the callback grants the request itself).
      const server = deps.config.mcp[event.value];
      if (!server?.url || !deps.mcp)
        throw new LobuError("invalid_grant", `there is no MCP server "${event.value}" here`, {
          status: 400,
          hint: "Admins declare MCP servers under [mcp.<id>] in lobu.toml.",
        });
      await deps.userSettings.update(request.agentId, userKey, (s) => ({
        ...s,
        mcp: add(s.mcp, event.value),
      }));
      const status = await deps.mcp.status(userKey, event.value);
      return status === "connected" || status === "shared"
        ? `MCP server ${event.value} is connected: its tools are available from the next message.`
        : `MCP server ${event.value} is added but the user's account is not connected yet: call its connect tool (from the next message) to connect it.`;
    }
    case "secret": {
      // The value is entered in the settings page (stored before this runs); a chat
      // button can only grant a secret the person or the team already stored.
      const name = secretName(event.value);
      const scopes = [
        { kind: "user", agentId: request.agentId, userKey } as const,
        { kind: "agent", agentId: request.agentId } as const,
        { kind: "installation" } as const,
      ];
      for (const scope of scopes) if (await deps.secrets.meta({ scope, name })) return undefined;
      throw new MissingSecret(
        `the secret "${name}" has no value yet: enter it on the settings page (the request's Open settings button) to grant it, or deny the request`,
      );
    }
  }
}

/**
 * Why the person whose request it is may not answer "always" for `tool`, if
 * they may not: the same rule as the settings page's tool approvals — only a
 * tool the agent has and marks "ask" is theirs to settle. (A tool the policy
 * denies, or one the agent does not list, such as a gateway-side or MCP tool,
 * stays the operator's decision.)
 */
async function alwaysRefusal(
  deps: Pick<AnswerDeps, "agents">,
  agentId: string,
  tool: string,
): Promise<string | undefined> {
  const agent = await deps.agents.get(agentId);
  const base = agent ? (agent.policy.tools[tool] ?? agent.policy.default) : undefined;
  if (agent?.tools.includes(tool) && base === "ask") return undefined;
  return `"always" is not available for ${tool}: only an admin can allow it for good; answer approve or deny`;
}

/** A granted secret nobody stored yet: the request stays open for its value. */
class MissingSecret extends Error {}

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
): Promise<AnswerResult> {
  const pending = await deps.requests.get(requestId);
  if (!pending) return { ok: false, reason: "unknown or expired request", status: 404 };
  let text = answer.text;
  if (pending.status === "pending" && (by.admin || by.userKey === userKeyOf(pending.origin))) {
    // Approvals and capability requests take their fixed choices; questions their own option ids or text.
    const type = pending.event.type;
    const allowed: readonly string[] | undefined =
      type === "question" ? undefined : CHOICES_OF[type].options;
    if (allowed && !allowed.includes(answer.choice ?? "")) {
      return {
        ok: false,
        reason: `answer a ${pending.event.type} with choice ${allowed.join(", ")}`,
        status: 400,
      };
    }
    if (
      pending.event.type === "approval_request" &&
      pending.event.displayComplete === false &&
      answer.choice !== ApprovalChoice.enum.deny
    ) {
      // Nobody approves what they could not read in full.
      return {
        ok: false,
        reason:
          "this input is too long to show in full, so it cannot be approved; deny it and ask the agent for smaller steps",
        status: 400,
      };
    }
    if (
      pending.event.type === "capability_request" &&
      answer.choice === CapabilityChoice.enum.granted
    ) {
      try {
        text = (await applyGrant(deps, pending)) ?? text;
      } catch (err) {
        if (err instanceof MissingSecret) return { ok: false, reason: err.message, status: 400 };
        if (!isLobuError(err)) throw err;
        // The grant cannot be applied (e.g. "*"): resolve it as denied so the agent
        // is not left waiting, and tell the person why.
        await deps.requests.answer(
          requestId,
          { choice: CapabilityChoice.enum.denied, text: `The grant was refused: ${err.message}` },
          by,
        );
        return {
          ok: false,
          reason: err.hint ? `${err.message}. ${err.hint}` : err.message,
          status: err.status,
        };
      }
    }
    if (pending.event.type === "approval_request" && answer.choice === ApprovalChoice.enum.always) {
      const tool = pending.event.tool;
      // A person (or an app answering for them) may make "always" only of what they could
      // settle themselves on their settings page; an admin answers with the operator's power.
      if (!by.admin) {
        const refusal = await alwaysRefusal(deps, pending.agentId, tool);
        if (refusal) return { ok: false, reason: refusal, status: 403 };
      }
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
