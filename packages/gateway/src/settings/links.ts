import { Hono } from "hono";
import { z } from "zod";
import { jsonBody } from "../http/errors.ts";
import { notFound } from "../http/refusals.ts";
import type { Accounts } from "../people/accounts.ts";
import type { OidcSignIn } from "../people/oidc.ts";
import { auditChange, type PersonDeps, type SettingsContext, type SettingsEnv } from "./person.ts";

/** What the linked-accounts routes use. */
export interface LinkSettingsDeps {
  accounts: Pick<Accounts, "linked" | "createCode" | "confirm" | "unlink" | "linkBySubject">;
  audit: PersonDeps["audit"];
  /** Sign-in with the team's OpenID Connect provider, when `[identity.oidc]` is set. */
  oidc?: Pick<OidcSignIn, "start" | "finish" | "name"> | undefined;
  /** Read while handling a request (the gateway listens by then). */
  readonly publicUrl: string;
}

const ConfirmBody = z.strictObject({ code: z.string().min(1).max(32) });

/**
 * `/links`: the person's linked identities (docs/identity.md). The session
 * proves its identity on both sides of the two-code handshake: an offer code
 * created here is bound to it; an offer entered here hands out a finishing
 * code (nothing linked yet); a finishing code entered here, by the offer's
 * creator, links the identity that entered the offer. Any
 * identity of the account may unlink any other (a lost phone, a stranger who
 * got a code); an identity outside the account is never named here.
 */
export function linkSettingsRoutes(d: LinkSettingsDeps): Hono<SettingsEnv> {
  const r = new Hono<SettingsEnv>();
  r.get("/links", (c) => linksView(d, c));
  r.post("/links/code", async (c) => {
    const { code, expiresAt } = await d.accounts.createCode(c.get("session").userKey);
    auditChange(d, c, "link_code_created", {});
    return c.json({ code, expiresAt: new Date(expiresAt).toISOString() });
  });
  r.post("/links/confirm", async (c) => {
    const { code } = await jsonBody(c, ConfirmBody);
    const done = await d.accounts.confirm(c.get("session").userKey, code);
    if (done.step === "pending")
      return linksView(d, c, {
        pending: { code: done.code, expiresAt: new Date(done.expiresAt).toISOString() },
      });
    return linksView(d, c, { joined: done.joined });
  });
  // OpenID Connect: started here (session + CSRF), finished by the provider's
  // redirect in the same session (the Lax cookie comes along on that navigation).
  r.post("/links/oidc", async (c) => {
    const oidc = oidcOf(d);
    return c.json({ url: await oidc.start(c.get("session").userKey, callbackUri(d)) });
  });
  r.get("/links/oidc/callback", async (c) => {
    const oidc = oidcOf(d);
    const { userKey } = c.get("session");
    const subject = await oidc.finish(userKey, new URL(c.req.url), callbackUri(d));
    await d.accounts.linkBySubject(userKey, subject);
    return c.redirect("/settings", 303);
  });
  r.delete("/links/:userKey", async (c) => {
    const { userKey } = c.get("session");
    const identity = c.req.param("userKey") ?? "";
    const { identities } = await d.accounts.linked(userKey);
    if (identities.length < 2 || !identities.includes(identity))
      throw notFound(`${identity.slice(0, 80)} is not linked to your account`);
    await d.accounts.unlink(identity, userKey);
    return linksView(d, c);
  });
  return r;
}

/**
 * The account as this session sees it; `extra` is what entering a code did
 * (`pending`: the finishing code to enter on the other account; `joined`: the
 * identity that joined).
 */
async function linksView(
  d: LinkSettingsDeps,
  c: SettingsContext,
  extra: Record<string, unknown> = {},
): Promise<Response> {
  const { userKey } = c.get("session");
  const { account, identities } = await d.accounts.linked(userKey);
  return c.json({
    identity: userKey,
    account,
    identities,
    ...(d.oidc ? { oidc: { name: d.oidc.name } } : {}),
    ...extra,
  });
}

function oidcOf(d: LinkSettingsDeps): NonNullable<LinkSettingsDeps["oidc"]> {
  if (!d.oidc) throw notFound("no OpenID Connect provider is set up", "Link with a code instead.");
  return d.oidc;
}

function callbackUri(d: LinkSettingsDeps): string {
  return `${d.publicUrl.replace(/\/$/, "")}/settings/api/links/oidc/callback`;
}
