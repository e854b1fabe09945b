import type { LobuConfig } from "@lobu/core";
import { auth, extractResourceMetadataUrl } from "@modelcontextprotocol/sdk/client/auth.js";
import type { OAuthClientInformationMixed } from "@modelcontextprotocol/sdk/shared/auth.js";
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { SecretStore } from "../secrets/store.ts";
import type { McpClients } from "./clients.ts";
import type { ConnectBinding, ConnectFlows, FlowSecrets } from "./connect-flows.ts";
import type { McpCredentials } from "./credentials.ts";
import { type OAuthMode, PersonOAuthProvider } from "./oauth.ts";
import { guardedFetch } from "./outbound.ts";

/**
 * Connecting an account, from the browser: opening a connect link starts an
 * OAuth authorization (the SDK's `auth()`: discovery from the server's 401,
 * registration, PKCE, `resource`) and answers with the provider's
 * authorization page; the callback exchanges the code for tokens, stored for
 * the person the link was made for.
 */
export interface ConnectDeps {
  config: Pick<LobuConfig, "mcp" | "network">;
  credentials: McpCredentials;
  flows: ConnectFlows;
  clients: Pick<McpClients, "forget">;
  secrets: Pick<SecretStore, "get">;
  /** `<public url>/mcp/callback` */
  redirectUrl(): string;
  fetch?: FetchLike;
}

export type ConnectFailure = { ok: false; status: 400 | 403 | 404 | 410 | 502; message: string };

/** Open a connect link: where to send the browser (and the flow's state, which names its cookie), or why not. */
export async function beginConnect(
  d: ConnectDeps,
  code: string,
  browser: string,
): Promise<{ ok: true; location: string; state: string } | ConnectFailure> {
  const binding = await d.flows.takeLink(code);
  if (!binding)
    return {
      ok: false,
      status: 410,
      message:
        "This connect link was already used or has expired. Ask the agent again for a new one, or connect from your settings page.",
    };
  const server = d.config.mcp[binding.serverId];
  if (!server?.url)
    return { ok: false, status: 404, message: "This MCP server is no longer configured." };
  const fetchFn = guardedFetch({
    serverUrl: server.url,
    allowPrivateRanges: d.config.network.allow_private_ranges,
    ...(d.fetch ? { fetch: d.fetch } : {}),
  });
  const resourceMetadataUrl = await probe(server.url, fetchFn);
  const state = d.flows.newState();
  let location: URL | undefined;
  const provider = await providerFor(d, binding, {
    kind: "connect",
    state,
    onRedirect: (url) => {
      location = url;
    },
  });
  try {
    await auth(provider, {
      serverUrl: server.url,
      fetchFn,
      ...(resourceMetadataUrl ? { resourceMetadataUrl } : {}),
    });
  } catch (err) {
    return {
      ok: false,
      status: 502,
      message: `Could not start the sign-in: ${(err as Error).message}`,
    };
  }
  const { verifier, client, discovery } = provider.started;
  if (!location || !verifier || !client)
    return { ok: false, status: 502, message: "The server did not ask for a sign-in." };
  // Stored only now, with what its callback needs: a flow that never started leaves nothing.
  await d.flows.start(
    state,
    { ...binding, browser },
    {
      verifier,
      client,
      ...(discovery ? { discovery } : {}),
    },
  );
  return { ok: true, location: location.href, state };
}

/** The OAuth callback: the binding that is now connected, or why not. */
export async function completeConnect(
  d: ConnectDeps,
  params: { code?: string; state?: string; error?: string; iss?: string },
  browser: string | undefined,
): Promise<{ ok: true; binding: ConnectBinding } | ConnectFailure> {
  const flow = await d.flows.take(params.state ?? "", browser);
  if (!flow)
    return {
      ok: false,
      status: 400,
      message:
        "This sign-in is unknown or has expired. Open a new connect link from the conversation.",
    };
  if (flow === "wrong_browser")
    return {
      ok: false,
      status: 403,
      message:
        "This sign-in was started in another browser. Open the connect link again in this one.",
    };
  // RFC 9207: the answer must come from the authorization server the flow went to (mix-up attacks).
  if (!issuerMatches(flow.secrets.discovery, params.iss))
    return {
      ok: false,
      status: 400,
      message:
        "This sign-in answer names another authorization server than the one the sign-in started at. Nothing was connected.",
    };
  if (params.error || !params.code)
    return {
      ok: false,
      status: 400,
      message: `The sign-in was not completed (${(params.error ?? "no code").slice(0, 100)}). Nothing was connected.`,
    };
  const server = d.config.mcp[flow.serverId];
  if (!server?.url)
    return { ok: false, status: 404, message: "This MCP server is no longer configured." };
  const provider = await providerFor(d, flow, { kind: "callback", secrets: flow.secrets });
  try {
    const result = await auth(provider, {
      serverUrl: server.url,
      authorizationCode: params.code,
      fetchFn: guardedFetch({
        serverUrl: server.url,
        allowPrivateRanges: d.config.network.allow_private_ranges,
        ...(d.fetch ? { fetch: d.fetch } : {}),
      }),
    });
    if (result !== "AUTHORIZED") throw new Error("the server did not issue tokens");
  } catch (err) {
    return {
      ok: false,
      status: 502,
      message: `The sign-in could not be completed: ${(err as Error).message}`,
    };
  }
  // The person's tokens belong to the flow's client: refresh and revocation use that one.
  if (server.oauth) await d.credentials.forget(flow.userKey, flow.serverId, ["client"]);
  else
    await d.credentials.saveClient(
      flow.userKey,
      flow.serverId,
      flow.secrets.client as OAuthClientInformationMixed,
    );
  await d.credentials.forget(flow.userKey, flow.serverId, ["verifier"]);
  // A connection made with older tokens (or none) must not outlive them.
  await d.clients.forget(flow.serverId, flow.userKey);
  const { browser: _b, secrets: _s, ...binding } = flow;
  return { ok: true, binding };
}

/**
 * RFC 9207: an `iss` on the callback must be the issuer of the authorization
 * server the flow started with, and one that advertises
 * `authorization_response_iss_parameter_supported` must send it.
 */
function issuerMatches(discovery: FlowSecrets["discovery"], iss: string | undefined): boolean {
  const metadata = discovery?.authorizationServerMetadata as
    | { issuer?: unknown; authorization_response_iss_parameter_supported?: unknown }
    | undefined;
  const expected =
    typeof metadata?.issuer === "string" ? metadata.issuer : discovery?.authorizationServerUrl;
  if (iss !== undefined) return iss === expected;
  return metadata?.authorization_response_iss_parameter_supported !== true;
}

async function providerFor(
  d: ConnectDeps,
  binding: ConnectBinding,
  mode: OAuthMode,
): Promise<PersonOAuthProvider> {
  const server = d.config.mcp[binding.serverId]!;
  const secretName = server.oauth?.client_secret;
  const clientSecret = secretName
    ? ((await d.secrets.get({ scope: { kind: "installation" }, name: secretName })) ?? undefined)
    : undefined;
  return new PersonOAuthProvider({
    credentials: d.credentials,
    userKey: binding.userKey,
    serverId: binding.serverId,
    server,
    redirectUrl: d.redirectUrl(),
    ...(clientSecret ? { clientSecret } : {}),
    mode,
  });
}

/**
 * RFC 9728 discovery starts from the server's 401: an unauthenticated
 * initialize request, whose WWW-Authenticate names the resource metadata.
 * Without one the SDK falls back to the well-known locations.
 */
async function probe(url: string, fetchFn: FetchLike): Promise<URL | undefined> {
  try {
    const res = await fetchFn(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 0,
        method: "initialize",
        params: {
          protocolVersion: "2025-06-18",
          capabilities: {},
          clientInfo: { name: "lobu-gateway", version: "0.1.0" },
        },
      }),
    });
    await res.body?.cancel();
    return res.status === 401 ? extractResourceMetadataUrl(res) : undefined;
  } catch {
    return undefined;
  }
}
