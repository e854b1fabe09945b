import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import Provider from "oidc-provider";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiGateway, startApiGateway } from "../api/helpers.ts";
import { openSettings, type SettingsSession } from "./helpers.ts";

/**
 * Linking by signing in with the team's OpenID Connect provider: a real
 * `oidc-provider` as the team's provider, the gateway's settings pages as
 * the relying party (oauth4webapi). Two identities that sign in as the same
 * subject are linked; a third signing in as someone else is not; a sign-in
 * started by one account and finished in another's session links nothing;
 * a callback replayed or with a forged state is refused.
 */

let provider: Provider;
let idp: Server;
let issuer: string;
let api: ApiGateway;
/** Who the next sign-in at the provider logs in as. */
let nextSubject = "alice";

/** The provider's interactions, answered at once: log in as `nextSubject`, grant `openid`. */
async function interaction(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  const grant = new provider.Grant({
    accountId: nextSubject,
    clientId: details.params.client_id as string,
  });
  grant.addOIDCScope("openid");
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: nextSubject }, consent: { grantId: await grant.save() } },
    { mergeWithLastSubmission: false },
  );
}

/** Follow redirects by hand with a cookie jar per browser, until the gateway's callback. */
async function signIn(session: SettingsSession, subject: string): Promise<Response> {
  nextSubject = subject;
  const start = await session.call("POST", "/links/oidc");
  expect(start.status).toBe(200);
  const { url } = (await start.json()) as { url: string };
  return followToCallback(url, session.cookie);
}

async function callbackUrl(authUrl: string): Promise<string> {
  const jar = new Map<string, string>();
  let next = authUrl;
  for (let i = 0; i < 10; i++) {
    if (next.startsWith(api.url)) return next;
    const res = await fetch(next, {
      redirect: "manual",
      headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; ") },
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const at = pair!.indexOf("=");
      jar.set(pair!.slice(0, at), pair!.slice(at + 1));
    }
    const location = res.headers.get("location");
    if (!location) throw new Error(`no redirect from ${next}: HTTP ${res.status}`);
    next = new URL(location, next).href;
  }
  throw new Error("too many redirects");
}

async function followToCallback(authUrl: string, cookie: string): Promise<Response> {
  return fetch(await callbackUrl(authUrl), { redirect: "manual", headers: { cookie } });
}

async function settingsFor(user: string): Promise<SettingsSession> {
  const res = await api.call(api.adminToken, "POST", "/api/v1/settings-links", { user });
  const { url } = (await res.json()) as { url: string };
  return openSettings(api, url);
}

async function identities(session: SettingsSession): Promise<string[]> {
  return ((await (await session.call("GET", "/links")).json()) as { identities: string[] })
    .identities;
}

beforeAll(async () => {
  let handler: (req: IncomingMessage, res: ServerResponse) => void = () => {};
  idp = createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve) => idp.listen(0, "127.0.0.1", resolve));
  issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
  api = await startApiGateway({
    identity: { oidc: { issuer, client_id: "lobu", client_secret: "lobu-client-secret" } },
  });
  provider = new Provider(issuer, {
    clients: [
      {
        client_id: "lobu",
        client_secret: "lobu-client-secret",
        redirect_uris: [`${api.url}/settings/api/links/oidc/callback`],
        token_endpoint_auth_method: "client_secret_post",
      },
    ],
    pkce: { required: () => true },
    findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
    interactions: { url: (_ctx, i) => `/interaction/${i.uid}` },
    features: { devInteractions: { enabled: false } },
  });
  const callback = provider.callback();
  handler = (req, res) => {
    if (req.url?.startsWith("/interaction/")) {
      interaction(req, res).catch((err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
      return;
    }
    callback(req, res);
  };
});

afterAll(async () => {
  await api?.close();
  await new Promise((resolve) => idp?.close(resolve));
});

describe("signing in with the team's OpenID Connect provider", () => {
  it("links identities that sign in as the same subject, and no one else", async () => {
    const slackAlice = await settingsFor("alice-one");
    const restAlice = await settingsFor("alice-two");
    const mallory = await settingsFor("mallory");
    const first = await signIn(slackAlice, "alice");
    expect(first.status).toBe(303);
    expect(first.headers.get("location")).toBe("/settings");
    expect(await identities(slackAlice)).toEqual(["api::alice-one"]);
    expect((await signIn(restAlice, "alice")).status).toBe(303);
    expect(await identities(restAlice)).toEqual(["api::alice-one", "api::alice-two"]);
    // Mallory signs in as herself: her own subject, nothing linked.
    expect((await signIn(mallory, "mallory")).status).toBe(303);
    expect(await identities(mallory)).toEqual(["api::mallory"]);
    const audit = await api.call(api.adminToken, "GET", "/api/v1/audit?action=identity.linked");
    expect(JSON.stringify(await audit.json())).toContain('"via":"oidc"');
  });

  it("links nothing when a sign-in started by one account is finished in another's session", async () => {
    const attacker = await settingsFor("attacker");
    const victim = await settingsFor("victim");
    await signIn(victim, "victim-sub");
    // The attacker starts, the victim's browser signs in (as the victim) and lands on the callback.
    nextSubject = "victim-sub";
    const start = await attacker.call("POST", "/links/oidc");
    const { url } = (await start.json()) as { url: string };
    const res = await followToCallback(url, victim.cookie);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("oidc_failed");
    expect(await identities(attacker)).toEqual(["api::attacker"]);
    expect(await identities(victim)).toEqual(["api::victim"]);
  });

  it("refuses a replayed callback, a forged state and a start without CSRF", async () => {
    const bob = await settingsFor("bob");
    nextSubject = "bob-sub";
    const { url } = (await (await bob.call("POST", "/links/oidc")).json()) as { url: string };
    const cb = await callbackUrl(url);
    expect((await fetch(cb, { redirect: "manual", headers: { cookie: bob.cookie } })).status).toBe(
      303,
    );
    const replay = await fetch(cb, { redirect: "manual", headers: { cookie: bob.cookie } });
    expect(replay.status).toBe(400);
    const forged = new URL(cb);
    forged.searchParams.set("state", "forged-state");
    expect(
      (await fetch(forged, { redirect: "manual", headers: { cookie: bob.cookie } })).status,
    ).toBe(400);
    expect((await bob.call("POST", "/links/oidc", undefined, { csrf: false })).status).toBe(403);
    // Without a session, the callback is refused before anything is read.
    expect((await fetch(cb, { redirect: "manual" })).status).toBe(401);
  });
});
