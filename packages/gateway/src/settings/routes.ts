import { ApprovalChoice, CapabilityChoice, LobuError, ToolPolicy } from "@lobu/core";
import { type Context, Hono } from "hono";
import { z } from "zod";
import { requireToken } from "../access/auth.ts";
import { endpoint } from "../access/endpoint.ts";
import { apiOrigin, mayOpenAdminUi } from "../access/permissions.ts";
import { requireSession } from "../access/session-auth.ts";
import type { SettingsLinks } from "../access/settings-links.ts";
import type { TokenStore } from "../access/tokens.ts";
import {
  ADMIN_SESSION_TTL_MS,
  type AdminSession,
  CLAIM_TTL_MS,
  type Claim,
  SETTINGS_SESSION_TTL_MS,
  type SettingsSession,
  type WebSessions,
} from "../access/web-sessions.ts";
import type { AgentRegistry } from "../agents/registry.ts";
import type { AuditLog } from "../audit/log.ts";
import { userKeyOf } from "../domain/origin.ts";
import { boundedBody } from "../http/body-limit.ts";
import { jsonBody } from "../http/errors.ts";
import type { SettingsSignIn } from "../http/sign-in.ts";
import {
  adminCookie,
  apiHeaders,
  clearSessionCookie,
  escapeHtml,
  forbidden,
  messagePage,
  newNonce,
  originAllowed,
  readSessionId,
  serveAsset,
  servePage,
  setPageHeaders,
  setSessionCookie,
  settingsCookie,
  WebBundle,
  webDistDir,
} from "../http/web.ts";
import type { UserAgentSettings } from "../people/user-settings.ts";
import { packageName, secretName, userDomain } from "../people/validate.ts";
import { providerSecretName } from "../providers/registry.ts";
import type { AnswerRequest } from "../runtime/answers.ts";
import type { RequestRegistry } from "../runtime/requests.ts";
import type { SecretRef } from "../secrets/store.ts";
import { buildView, requestView, type SettingsViewDeps, toolBase } from "./view.ts";

type Env = { Variables: { session: SettingsSession } };

const Value = z.strictObject({ value: z.string().min(1).max(16_384) });
const Name = z.strictObject({ name: z.string().min(1).max(200) });
const ModelChoice = z.strictObject({
  provider: z.string().max(63).nullable(),
  model: z.string().max(200).nullable(),
});
/** A person settles an "ask" tool; only an admin denies one. */
const ToolChoice = z.strictObject({ policy: ToolPolicy.exclude(["deny"]) });
const Answer = z.strictObject({
  choice: z.enum([...CapabilityChoice.options, ...ApprovalChoice.options]),
  /** The secret's value, for a granted `secret` request. */
  value: z.string().min(1).max(16_384).optional(),
});
const LinkRequest = z.strictObject({
  /** The end user, as in POST /api/v1/agents/:id/messages. */
  user: z.string().min(1).max(200),
  channel: z.string().min(1).max(200).default("default"),
  userName: z.string().max(200).optional(),
  agent: z.string().max(63).optional(),
});

/** Most domains (or packages, ...) one person may add for one agent. */
const MAX_LIST = 200;
/** Telegram appends its launch parameters as a fragment; keep it across the claim redirect. */
const FRAGMENT = /^[A-Za-z0-9%=&._~+-]{1,4096}$/;
/** The claim form carries the fragment only; the settings API takes small JSON bodies. */
const CLAIM_MAX_BODY_BYTES = 16 * 1024;
const API_MAX_BODY_BYTES = 64 * 1024;

/** What the settings page and its API use. */
export interface SettingsDeps extends SettingsViewDeps {
  /** Read while handling a request (the gateway listens by then). */
  readonly publicUrl: string;
  sessions: WebSessions;
  settingsLinks: Pick<SettingsLinks, "create" | "defaultAgentFor">;
  /** The platforms' own ways into the page (Telegram's Mini App), from their plugins. */
  signIns: readonly SettingsSignIn[];
  agents: AgentRegistry;
  audit: AuditLog;
  requests: Pick<RequestRegistry, "get">;
  tokens: TokenStore;
  answer: AnswerRequest;
}

/**
 * The settings page and its API (mounted at the gateway root):
 *
 * - `GET /settings` the React page; `/settings/assets/*` its bundle.
 * - `GET|POST /settings/claim/:code` redeem a one-time link into a session.
 * - `POST /settings/api/session/<platform>` a platform's own proof (a Telegram Mini App's
 *   initData) into a session; see http/sign-in.ts.
 * - `/settings/api/*` the person's settings for their agent (session + CSRF).
 */
export function settingsRoutes(s: SettingsDeps, env: NodeJS.ProcessEnv = process.env): Hono {
  const app = new Hono();
  const sessions = s.sessions;
  const bundle = new WebBundle(webDistDir(env));
  const https = () => s.publicUrl.startsWith("https:");
  const cookie = () => settingsCookie(https());
  // A platform whose app shows these pages in a frame (Telegram Web) may frame them; nobody else.
  const frameAncestors = s.signIns.flatMap((signIn) => signIn.frameAncestors);
  const page = (nonce?: string) => ({
    frameAncestors,
    https: https(),
    ...(nonce ? { nonce } : {}),
  });

  app.get("/settings", (c) => servePage(c, bundle, page()));
  app.get("/settings/", (c) => c.redirect("/settings", 301));
  app.get("/settings/assets/:name", (c) => serveAsset(c, bundle, https()));

  // ---------------------------------------------------------------- claim links

  const claimError = (c: Context, reason: "used" | "expired" | "unknown" | "cross-site") => {
    const nonce = newNonce();
    setPageHeaders(c, page(nonce));
    const text = {
      used: [
        "This link was already used",
        "Settings links work once. Send <code>settings</code> to the bot again for a new one.",
      ],
      expired: [
        "This link has expired",
        "Settings links are valid for 10 minutes. Send <code>settings</code> to the bot again for a new one.",
      ],
      unknown: [
        "This link is not valid",
        "Check that you copied the whole link, or send <code>settings</code> to the bot for a new one.",
      ],
      "cross-site": [
        "Open the link directly",
        "This request came from another site and was refused. Open the link from your chat.",
      ],
    }[reason];
    const status = reason === "cross-site" ? 403 : reason === "unknown" ? 401 : 410;
    return c.html(
      messagePage({ nonce, title: text[0]!, body: `<p>${text[1]}</p>` }),
      status as 401 | 403 | 410,
    );
  };

  app.get("/settings/claim/:code", async (c) => {
    // Looking does not use the code: link previews (Slack unfurls) must not burn it.
    const found = await sessions.peekClaim(c.req.param("code"));
    if (!found.ok) return claimError(c, found.reason);
    const agent = await s.agents.get(found.claim.agentId);
    const nonce = newNonce();
    setPageHeaders(c, page(nonce));
    const who = found.claim.origin.userName ?? found.claim.origin.userId;
    return c.html(
      messagePage({
        nonce,
        title: "Open your settings",
        body: `<p>Settings of <strong>${escapeHtml(agent?.name ?? found.claim.agentId)}</strong> for <strong>${escapeHtml(who)}</strong>.</p>
<form method="post" id="claim"><input type="hidden" name="fragment" id="fragment" value=""><p><button type="submit">Continue</button></p></form>`,
        // Continue by itself (with Telegram's launch fragment, if any); the button stays for no-JS.
        script: `document.getElementById("fragment").value=location.hash.slice(1);document.getElementById("claim").submit();`,
      }),
    );
  });

  app.post("/settings/claim/:code", boundedBody(CLAIM_MAX_BODY_BYTES), async (c) => {
    if (!originAllowed(c, s.publicUrl)) return claimError(c, "cross-site");
    // The form is read before the code is used: a body refused as too large leaves it unused.
    let fragment = "";
    try {
      const body = await c.req.parseBody();
      if (typeof body.fragment === "string" && FRAGMENT.test(body.fragment))
        fragment = `#${body.fragment}`;
    } catch {}
    const found = await sessions.redeemClaim(c.req.param("code"));
    if (!found.ok) return claimError(c, found.reason);
    const claim = found.claim;
    const { id } = await sessions.create<SettingsSession>(
      {
        kind: "settings",
        userKey: claim.userKey,
        agentId: claim.agentId,
        origin: claim.origin,
        via: "claim",
        ...(claim.origin.userName ? { userName: claim.origin.userName } : {}),
      },
      SETTINGS_SESSION_TTL_MS,
    );
    setSessionCookie(c, cookie(), id, SETTINGS_SESSION_TTL_MS);
    s.audit.record({
      action: "settings.session_opened",
      actor: claim.userKey,
      agentId: claim.agentId,
      details: { via: "claim" },
    });
    return c.redirect(`/settings${landingQuery(claim)}${fragment}`, 303);
  });

  // API/CLI channel: an app integrating Lobu hands its user a one-time settings link.
  // (Defined here, next to the claim links it mints; POST /api/v1/settings-links.)
  // The link is for a person the token acts for: client and user tokens mint links only
  // for the api users of their namespace (never api::<user>, which may be an admin).
  app.post(
    "/api/v1/settings-links",
    requireToken(s.tokens),
    endpoint("settings_links.create", {}, async (c, { token }) => {
      const body = await jsonBody(c, LinkRequest);
      const origin = apiOrigin(token, body);
      const agentId = body.agent ? (await s.agents.require(body.agent)).id : undefined;
      const url = await s.settingsLinks.create(origin, agentId ? { agentId } : {});
      return c.json({ url, expiresAt: Date.now() + CLAIM_TTL_MS }, 201);
    }),
  );

  // ---------------------------------------------------------------- the API

  const api = new Hono<Env>();
  api.use("*", apiHeaders(https));
  api.use("*", boundedBody(API_MAX_BODY_BYTES));

  // A platform's own sign-in (Telegram Mini App: the signed initData is the proof of who opened the page).
  const signInPaths = new Set<string>();
  for (const signIn of s.signIns) {
    const path = `/session/${signIn.platform}`;
    signInPaths.add(`/settings/api${path}`);
    api.post(path, async (c) => {
      if (!originAllowed(c, s.publicUrl))
        throw forbidden("cross-site request refused", `Open the settings from ${signIn.label}.`);
      const { userKey, userName } = await signIn.verify(c);
      const agentId = await s.settingsLinks.defaultAgentFor(signIn.platform);
      const { id, session } = await sessions.create<SettingsSession>(
        {
          kind: "settings",
          userKey,
          agentId,
          via: signIn.platform,
          ...(userName ? { userName } : {}),
        },
        SETTINGS_SESSION_TTL_MS,
      );
      setSessionCookie(c, cookie(), id, SETTINGS_SESSION_TTL_MS);
      s.audit.record({
        action: "settings.session_opened",
        actor: userKey,
        agentId,
        details: { via: signIn.platform },
      });
      // Inside Telegram Web's iframe the cookie may be refused: the page sends `token` as a header.
      return c.json({ token: id, csrf: session.csrf, expiresAt: session.expiresAt });
    });
  }

  const needSession = requireSession({
    sessions,
    cookie: cookie(),
    kind: "settings",
    publicUrl: () => s.publicUrl,
    hint: "Open your settings from the chat: send `settings` to the bot for a new link.",
  });
  // Everything but the platforms' sign-ins needs a session (and CSRF on changes).
  api.use("*", (c, next) => (signInPaths.has(c.req.path) ? next() : needSession(c, next)));

  const agentOf = async (c: Context<Env>) => s.agents.require(c.get("session").agentId);
  const audit = (c: Context<Env>, action: string, details: Record<string, unknown>) => {
    const session = c.get("session");
    s.audit.record({
      action: `settings.${action}`,
      actor: session.userKey,
      agentId: session.agentId,
      details,
    });
  };
  const update = (c: Context<Env>, change: (cur: UserAgentSettings) => UserAgentSettings) => {
    const session = c.get("session");
    return s.userSettings.update(session.agentId, session.userKey, change);
  };
  const view = async (c: Context<Env>) =>
    c.json(await buildView(s, c.get("session"), await agentOf(c)));
  const userRef = (c: Context<Env>, name: string): SecretRef => {
    const session = c.get("session");
    return { scope: { kind: "user", agentId: session.agentId, userKey: session.userKey }, name };
  };
  // Lists people grow one entry per request: bounded, so a settings record stays small.
  const add = (list: string[], v: string, what = "entries") => {
    if (list.includes(v)) return list;
    if (list.length >= MAX_LIST)
      throw new LobuError("invalid_setting", `at most ${MAX_LIST} ${what}`, {
        status: 400,
        hint: `Remove ${what} you no longer need first.`,
      });
    return [...list, v];
  };
  const remove = (list: string[], v: string) => list.filter((x) => x !== v);

  api.get("/session", (c) => {
    const session = c.get("session");
    return c.json({
      csrf: session.csrf,
      userKey: session.userKey,
      agentId: session.agentId,
      expiresAt: session.expiresAt,
      via: session.via,
    });
  });
  api.post("/logout", async (c) => {
    await sessions.delete(readSessionId(c, cookie()));
    clearSessionCookie(c, cookie());
    return c.json({ ok: true });
  });
  api.get("/state", view);

  // Model provider and the person's own key (write-only: only a masked hint comes back).
  api.put("/model", async (c) => {
    const body = await jsonBody(c, ModelChoice);
    if (body.provider) s.providers.require(body.provider);
    await update(c, (cur) => {
      const { provider: _p, model: _m, ...rest } = cur;
      return {
        ...rest,
        ...(body.provider ? { provider: body.provider } : {}),
        ...(body.model?.trim() ? { model: body.model.trim() } : {}),
      };
    });
    audit(c, "model_set", { provider: body.provider, model: body.model });
    return view(c);
  });
  api.put("/keys/:provider", async (c) => {
    const provider = s.providers.require(c.req.param("provider"));
    const { value } = await jsonBody(c, Value);
    const meta = await s.secrets.set(userRef(c, providerSecretName(provider.id)), value.trim());
    audit(c, "provider_key_set", { provider: provider.id, version: meta.version });
    return view(c);
  });
  api.delete("/keys/:provider", async (c) => {
    const provider = s.providers.require(c.req.param("provider"));
    if (!(await s.secrets.delete(userRef(c, providerSecretName(provider.id)))))
      throw new LobuError("not_found", `you have no key for ${provider.id}`, { status: 404 });
    audit(c, "provider_key_deleted", { provider: provider.id });
    return view(c);
  });

  // Other secrets the agent asked for.
  api.put("/secrets/:name", async (c) => {
    const name = secretName(c.req.param("name"));
    const { value } = await jsonBody(c, Value);
    await s.secrets.set(userRef(c, name), value);
    audit(c, "secret_set", { name });
    return view(c);
  });
  api.delete("/secrets/:name", async (c) => {
    const name = secretName(c.req.param("name"));
    if (!(await s.secrets.delete(userRef(c, name))))
      throw new LobuError("not_found", `you have no secret "${name}"`, { status: 404 });
    audit(c, "secret_deleted", { name });
    return view(c);
  });

  // Skills from the catalog.
  api.post("/skills", async (c) => {
    const { name } = await jsonBody(c, Name);
    const skill = s.skills.get(name);
    if (!skill)
      throw new LobuError("invalid_setting", `there is no skill "${name}"`, {
        status: 400,
        hint: "Pick one from the catalog; admins add skills with `lobu skills add` or under [skills.*] in lobu.toml.",
      });
    await update(c, (cur) => ({ ...cur, skills: add(cur.skills, skill.name) }));
    audit(c, "skill_installed", { skill: skill.name });
    return view(c);
  });
  api.delete("/skills/:name", async (c) => {
    const name = c.req.param("name");
    await update(c, (cur) => ({ ...cur, skills: remove(cur.skills, name) }));
    audit(c, "skill_removed", { skill: name });
    return view(c);
  });

  // Network permissions.
  api.post("/domains", async (c) => {
    const { name } = await jsonBody(c, Name);
    const agent = await agentOf(c);
    const domain = userDomain(name, [...s.config.network.deny, ...agent.network.deny]);
    await update(c, (cur) => ({ ...cur, domains: add(cur.domains, domain, "domains") }));
    audit(c, "domain_allowed", { domain });
    return view(c);
  });
  api.delete("/domains/:domain", async (c) => {
    const domain = c.req.param("domain");
    await update(c, (cur) => ({ ...cur, domains: remove(cur.domains, domain) }));
    audit(c, "domain_removed", { domain });
    return view(c);
  });

  // Nix packages and MCP servers are only recorded: nothing provisions them into
  // sandboxes yet (the page says so, and such capability grants are refused).
  api.post("/packages", async (c) => {
    const name = packageName((await jsonBody(c, Name)).name);
    await update(c, (cur) => ({ ...cur, packages: add(cur.packages, name, "packages") }));
    audit(c, "package_added", { package: name });
    return view(c);
  });
  api.delete("/packages/:name", async (c) => {
    const name = c.req.param("name");
    await update(c, (cur) => ({ ...cur, packages: remove(cur.packages, name) }));
    audit(c, "package_removed", { package: name });
    return view(c);
  });

  // MCP servers declared by the admin ([mcp.*]).
  api.post("/mcp/:id", async (c) => {
    const id = c.req.param("id");
    if (!s.config.mcp[id])
      throw new LobuError("invalid_setting", `there is no MCP server "${id}"`, { status: 400 });
    await update(c, (cur) => ({ ...cur, mcp: add(cur.mcp, id) }));
    audit(c, "mcp_connected", { mcp: id });
    return view(c);
  });
  api.delete("/mcp/:id", async (c) => {
    const id = c.req.param("id");
    await update(c, (cur) => ({ ...cur, mcp: remove(cur.mcp, id) }));
    audit(c, "mcp_disconnected", { mcp: id });
    return view(c);
  });

  // Tool approvals: only tools the agent marks "ask" are the person's to settle.
  api.put("/tools/:tool", async (c) => {
    const tool = c.req.param("tool");
    const { policy } = await jsonBody(c, ToolChoice);
    const agent = await agentOf(c);
    const base = toolBase(s, agent, tool);
    if (!base)
      throw new LobuError("invalid_setting", `this agent has no tool "${tool}"`, { status: 400 });
    if (base === "deny")
      throw forbidden(`${tool} is disabled by the agent's policy`, "Only an admin can change it.");
    if (base !== "ask")
      throw new LobuError("invalid_setting", `${tool} is already allowed`, { status: 400 });
    await update(c, (cur) => {
      const { [tool]: _old, ...others } = cur.toolPolicy;
      return { ...cur, toolPolicy: policy === "allow" ? { ...others, [tool]: "allow" } : others };
    });
    audit(c, "tool_policy_set", { tool, policy });
    return view(c);
  });

  // A request the agent made in the chat, approved (or not) from this page.
  const ownRequest = async (c: Context<Env>) => {
    const request = await s.requests.get(c.req.param("id") ?? "");
    const session = c.get("session");
    if (!request) throw new LobuError("not_found", "unknown or expired request", { status: 404 });
    if (userKeyOf(request.origin) !== session.userKey)
      throw forbidden(
        "this request belongs to someone else",
        "Only the person who asked can answer.",
      );
    return request;
  };
  api.get("/requests/:id", async (c) => c.json(requestView(await ownRequest(c))));
  api.post("/requests/:id/answer", async (c) => {
    const request = await ownRequest(c);
    const body = await jsonBody(c, Answer);
    const session = c.get("session");
    const event = request.event;
    if (request.status !== "pending")
      throw new LobuError("request_not_answerable", `request already ${request.status}`, {
        status: 409,
      });
    if (
      event.type === "capability_request" &&
      event.kind === "secret" &&
      body.choice === "granted"
    ) {
      if (!body.value)
        throw new LobuError("invalid_setting", "enter the secret's value to grant it", {
          status: 400,
        });
      const name = secretName(event.value);
      await s.secrets.set(
        {
          scope: { kind: "user", agentId: request.agentId, userKey: session.userKey },
          name,
        },
        body.value,
      );
      audit(c, "secret_set", { name, requestId: request.requestId });
    }
    const result = await s.answer(
      request.requestId,
      { choice: body.choice },
      {
        userKey: session.userKey,
        label: `${session.userKey.split(":")[0]}:${session.userName ?? session.userKey.split(":").at(-1)}`,
        actor: session.userKey,
      },
    );
    if (!result.ok)
      throw new LobuError("request_not_answerable", result.reason, { status: result.status });
    return c.json(requestView(result.request));
  });

  // Configured admins ([admin] users) open the admin UI from here, no token needed.
  api.post("/admin-login", async (c) => {
    const session = c.get("session");
    if (!mayOpenAdminUi(s.config, session.userKey))
      throw forbidden(
        "you are not an admin of this gateway",
        "Admins are listed in [admin] users; api users minted by client tokens never are.",
      );
    const { id } = await sessions.create<AdminSession>(
      { kind: "admin", actor: session.userKey, name: session.userName ?? session.userKey },
      ADMIN_SESSION_TTL_MS,
    );
    setSessionCookie(c, adminCookie(https()), id, ADMIN_SESSION_TTL_MS);
    s.audit.record({
      action: "admin.session_opened",
      actor: session.userKey,
      details: { via: "settings" },
    });
    return c.json({ ok: true, redirect: "/admin" });
  });

  app.route("/settings/api", api);
  return app;
}

/** Query string the page opens with after a claim: the request to answer, if any. */
function landingQuery(claim: Claim): string {
  return claim.requestId ? `?${new URLSearchParams({ request: claim.requestId })}` : "";
}
