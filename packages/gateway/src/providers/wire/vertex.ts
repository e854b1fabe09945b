import { JWT } from "google-auth-library";
import {
  geminiModelOf,
  geminiPathWithModel,
  geminiRoutes,
  geminiUsage,
  googleErrorBody,
} from "./gemini.ts";
import type { ProviderWire, WireProvider } from "./types.ts";

/** The token endpoint google-auth-library calls; a key's own `token_uri` replaces it. */
const GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token";
const SCOPE = "https://www.googleapis.com/auth/cloud-platform";

interface ServiceAccountKey {
  client_email: string;
  private_key: string;
  private_key_id?: string;
  project_id?: string;
  token_uri?: string;
}

/** The service-account JSON key a Vertex AI provider secret holds, checked. */
export function parseServiceAccountKey(secret: string): ServiceAccountKey {
  let parsed: unknown;
  try {
    parsed = JSON.parse(secret);
  } catch {
    throw new Error("the Vertex AI key is not a service-account JSON key");
  }
  const k = parsed as Partial<ServiceAccountKey> & { type?: unknown };
  if (
    k === null ||
    typeof k !== "object" ||
    k.type !== "service_account" ||
    typeof k.client_email !== "string" ||
    typeof k.private_key !== "string"
  ) {
    throw new Error(
      'the Vertex AI key must be a service-account JSON key (type "service_account", client_email, private_key)',
    );
  }
  return k as ServiceAccountKey;
}

/** A minted token per key, reused until shortly before it expires (the library refreshes it). */
const clients = new Map<string, JWT>();
const MAX_CLIENTS = 256;

function clientFor(secret: string): JWT {
  let client = clients.get(secret);
  if (client) return client;
  const key = parseServiceAccountKey(secret);
  client = new JWT({
    email: key.client_email,
    key: key.private_key,
    keyId: key.private_key_id,
    scopes: [SCOPE],
  });
  const tokenUri = key.token_uri;
  if (tokenUri && tokenUri !== GOOGLE_TOKEN_URL) {
    // google-auth-library always posts to Google's token URL; the key's own
    // token_uri (a private endpoint, an emulator) is honoured here.
    client.transporter.interceptors.request.add({
      resolved: async (config) => {
        if (String(config.url) === GOOGLE_TOKEN_URL) config.url = new URL(tokenUri);
        return config;
      },
    });
  }
  if (clients.size >= MAX_CLIENTS) clients.delete(clients.keys().next().value as string);
  clients.set(secret, client);
  return client;
}

/** The project calls are billed to: the provider's `project`, else the key's own. */
function projectOf(provider: WireProvider, secret: string): string {
  const project = provider.project ?? parseServiceAccountKey(secret).project_id;
  if (!project) throw new Error(`set project under [providers.${provider.id}] in lobu.toml`);
  return project;
}

/**
 * Vertex AI with a service-account key: the worker calls the publisher model
 * path (`/v1/publishers/google/models/<model>:streamGenerateContent`, as pi's
 * Vertex client does with an API key); the relay puts the project and location
 * in the path and an OAuth access token it minted from the key in
 * `Authorization`. The key never leaves the gateway.
 */
export const vertexWire: ProviderWire = {
  api: "google-vertex",
  routes: geminiRoutes("/v1(beta1)?/publishers/google", "/v1/publishers/google"),
  placeholderHeaders: ["x-goog-api-key", "authorization"],
  credentialHeaders: ["x-goog-api-key", "authorization"],
  modelOf: (path) => geminiModelOf(path),
  outputFields: ["generationConfig.maxOutputTokens"],
  choicesField: "generationConfig.candidateCount",
  pathWithModel: geminiPathWithModel,
  upstreamPath(path, provider, key) {
    const m = /^\/(v1|v1beta1)\/publishers\/(.*)$/.exec(path);
    if (!m) return path;
    const location = provider.region ?? "global";
    const project = encodeURIComponent(projectOf(provider, key));
    return `/${m[1]}/projects/${project}/locations/${encodeURIComponent(location)}/publishers/${m[2]}`;
  },
  async authenticate(req, key) {
    req.url.searchParams.delete("key");
    const { token } = await clientFor(key).getAccessToken();
    if (!token) throw new Error("the token endpoint gave no access token");
    req.headers.set("authorization", `Bearer ${token}`);
  },
  usage: geminiUsage,
  errorBody: googleErrorBody,
};
