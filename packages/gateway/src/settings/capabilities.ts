import { LobuError } from "@lobu/core";
import { Hono } from "hono";
import { z } from "zod";
import { jsonBody } from "../http/errors.ts";
import { packageName, userDomain } from "../people/validate.ts";
import {
  addTo,
  agentOf,
  auditChange,
  invalidSetting,
  type PersonDeps,
  removeFrom,
  type SettingsEnv,
  type SettingsHandler,
  updateSettings,
  viewOf,
} from "./person.ts";

const Name = z.strictObject({ name: z.string().min(1).max(200) });

/**
 * What the person adds to their agent: skills from the catalog, domains it
 * may reach, Nix packages (checked against the package set and the operator's
 * lists, then built in the background; the view shows each one's state) and
 * MCP servers.
 */
export function capabilityRoutes(d: PersonDeps): Hono<SettingsEnv> {
  const r = new Hono<SettingsEnv>();
  r.post("/skills", installSkill(d));
  r.delete("/skills/:name", removeSkill(d));
  r.post("/domains", allowDomain(d));
  r.delete("/domains/:domain", removeDomain(d));
  r.post("/packages", addPackage(d));
  r.delete("/packages/:name", removePackage(d));
  r.post("/mcp/:id", addMcp(d));
  r.delete("/mcp/:id", removeMcp(d));
  r.post("/mcp/:id/connect", connectMcp(d));
  r.post("/mcp/:id/disconnect", disconnectMcp(d));
  return r;
}

function installSkill(d: PersonDeps): SettingsHandler {
  return async (c) => {
    const { name } = await jsonBody(c, Name);
    const skill = d.skills.get(name);
    if (!skill)
      throw invalidSetting(
        `there is no skill "${name}"`,
        "Pick one from the catalog; admins add skills with `lobu skills add` or under [skills.*] in lobu.toml.",
      );
    await updateSettings(d, c, (cur) => ({ ...cur, skills: addTo(cur.skills, skill.name) }));
    auditChange(d, c, "skill_installed", { skill: skill.name });
    return viewOf(d, c);
  };
}

function removeSkill(d: PersonDeps): SettingsHandler {
  return async (c) => {
    const name = c.req.param("name") ?? "";
    await updateSettings(d, c, (cur) => ({ ...cur, skills: removeFrom(cur.skills, name) }));
    auditChange(d, c, "skill_removed", { skill: name });
    return viewOf(d, c);
  };
}

function allowDomain(d: PersonDeps): SettingsHandler {
  return async (c) => {
    const { name } = await jsonBody(c, Name);
    const agent = await agentOf(d, c);
    const domain = userDomain(name, [...d.config.network.deny, ...agent.network.deny]);
    await updateSettings(d, c, (cur) => ({
      ...cur,
      domains: addTo(cur.domains, domain, "domains"),
    }));
    auditChange(d, c, "domain_allowed", { domain });
    return viewOf(d, c);
  };
}

function removeDomain(d: PersonDeps): SettingsHandler {
  return async (c) => {
    const domain = c.req.param("domain") ?? "";
    await updateSettings(d, c, (cur) => ({ ...cur, domains: removeFrom(cur.domains, domain) }));
    auditChange(d, c, "domain_removed", { domain });
    return viewOf(d, c);
  };
}

function addPackage(d: PersonDeps): SettingsHandler {
  return async (c) => {
    const name = packageName((await jsonBody(c, Name)).name);
    await checkPackage(d, name);
    await updateSettings(d, c, (cur) => ({
      ...cur,
      packages: addTo(cur.packages, name, "packages"),
    }));
    auditChange(d, c, "package_added", { package: name });
    const session = c.get("session");
    await d.packages?.status(
      { agentId: session.agentId, userKey: session.userKey },
      { retry: [name] },
    );
    return viewOf(d, c);
  };
}

/** Refuse a package this gateway cannot provide (off, virtual tier, denied, not in the set). */
async function checkPackage(d: Pick<PersonDeps, "packages">, name: string): Promise<void> {
  const refusal = d.packages
    ? await d.packages.refusal(name)
    : { kind: "unavailable" as const, reason: "Nix packages are not enabled on this gateway" };
  if (!refusal) return;
  throw refusal.kind === "unavailable"
    ? new LobuError("not_provisioned", refusal.reason, {
        status: 501,
        hint: refusal.hint ?? "Ask an admin about [packages] in lobu.toml.",
      })
    : new LobuError("invalid_setting", refusal.reason, {
        status: 400,
        hint: "Use the attribute name from the package set (search.nixos.org for nixpkgs).",
      });
}

function removePackage(d: PersonDeps): SettingsHandler {
  return async (c) => {
    const name = c.req.param("name") ?? "";
    await updateSettings(d, c, (cur) => ({ ...cur, packages: removeFrom(cur.packages, name) }));
    auditChange(d, c, "package_removed", { package: name });
    return viewOf(d, c);
  };
}

/** MCP servers are the admin's ([mcp.*]); a person adds one to their agent. */
function addMcp(d: PersonDeps): SettingsHandler {
  return async (c) => {
    const id = mcpId(d, c.req.param("id"));
    await updateSettings(d, c, (cur) => ({ ...cur, mcp: addTo(cur.mcp, id) }));
    auditChange(d, c, "mcp_added", { mcp: id });
    return viewOf(d, c);
  };
}

/** Remove a server the person added (their account stays connected: Disconnect does that). */
function removeMcp(d: PersonDeps): SettingsHandler {
  return async (c) => {
    const id = c.req.param("id") ?? "";
    await updateSettings(d, c, (cur) => ({ ...cur, mcp: removeFrom(cur.mcp, id) }));
    auditChange(d, c, "mcp_removed", { mcp: id });
    return viewOf(d, c);
  };
}

/**
 * A connect link for the person's own account (the page opens it): the same
 * single-use link a chat thread gets. The server is added to the agent too.
 */
function connectMcp(d: PersonDeps): SettingsHandler {
  return async (c) => {
    const id = mcpId(d, c.req.param("id"));
    if (!d.mcp || !d.config.mcp[id]?.url)
      throw invalidSetting(`MCP server "${id}" is not connected by this gateway`);
    const session = c.get("session");
    await updateSettings(d, c, (cur) => ({ ...cur, mcp: addTo(cur.mcp, id) }));
    const url = await d.mcp.connectUrl({
      userKey: session.userKey,
      agentId: session.agentId,
      serverId: id,
    });
    auditChange(d, c, "mcp_connect_started", { mcp: id });
    return c.json({ url });
  };
}

/** Revoke the person's tokens at the server (RFC 7009) and forget them. */
function disconnectMcp(d: PersonDeps): SettingsHandler {
  return async (c) => {
    const id = mcpId(d, c.req.param("id"));
    const result = await d.mcp?.disconnect(c.get("session").userKey, id);
    auditChange(d, c, "mcp_disconnected", { mcp: id, revoked: result?.revoked ?? false });
    return viewOf(d, c);
  };
}

function mcpId(d: PersonDeps, raw: string | undefined): string {
  const id = raw ?? "";
  if (!d.config.mcp[id]) throw invalidSetting(`there is no MCP server "${id}"`);
  return id;
}
