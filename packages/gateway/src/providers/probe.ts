import { presetOf } from "./presets.ts";
import { KEYLESS, type ProviderInfo } from "./registry.ts";
import { type UpstreamRequest, WIRES } from "./wire/index.ts";

/** What one cheap call to a provider (its model listing) says about its setup. */
export interface ProviderProbe {
  provider: string;
  level: "ok" | "warn" | "fail";
  /** One short phrase: "key accepted, 12 models", "key rejected (HTTP 401)", ... */
  result: string;
  /** What to do about it, when something is wrong. */
  fix?: string;
}

/**
 * Check a provider with the cheapest call that proves the key: listing its
 * models (the wire's `listing`: `GET /v1/models`, `GET /models`, Gemini's
 * `GET /v1beta/models`), which costs no tokens. A listing
 * that lacks the provider's default model is a warning (a local server
 * without it pulled, a typo in `default_model`).
 */
export async function probeProvider(
  p: ProviderInfo,
  key: string | undefined,
  opts: { fetch?: typeof fetch; timeoutMs?: number } = {},
): Promise<ProviderProbe> {
  const keyVar = p.keyEnv ?? `api_key_env under [providers.${p.id}]`;
  const baseVar = presetOf(p.id)?.baseEnv ?? `base_url under [providers.${p.id}]`;
  if (!key) {
    return {
      provider: p.id,
      level: "warn",
      result: "no key",
      fix: `set ${keyVar}, or add a key per agent or person in the settings page`,
    };
  }
  const wire = WIRES[p.type];
  if (!wire.listing) {
    // Signed and token-minted wires (Vertex AI, Bedrock, Azure): the relay checks them on their first call.
    return { provider: p.id, level: "ok", result: `key set, not contacted (${p.type})` };
  }
  const request: UpstreamRequest = {
    method: "GET",
    url: new URL(`${p.baseUrl}${wire.listing.path}`),
    headers: new Headers(wire.listing.headers),
    body: undefined,
  };
  const url = request.url.href;
  let res: Response;
  try {
    // The wire's own authentication, as the relay adds it; none for a keyless local server.
    if (key !== KEYLESS) await wire.authenticate(request, key, p);
    res = await (opts.fetch ?? fetch)(request.url, {
      headers: request.headers,
      signal: AbortSignal.timeout(opts.timeoutMs ?? 8000),
    });
  } catch (err) {
    const cause = causeOf(err);
    return {
      provider: p.id,
      level: "fail",
      result: `unreachable (${cause})`,
      fix: p.keyOptional
        ? `start the server, or set ${baseVar} to where it listens`
        : `check the network, or set ${baseVar} for a proxy or compatible endpoint`,
    };
  }
  if (res.status === 401 || res.status === 403 || wire.listing.rejects?.includes(res.status)) {
    await res.body?.cancel();
    return {
      provider: p.id,
      level: "fail",
      result: `key rejected (HTTP ${res.status})`,
      fix: `check ${keyVar}${presetOf(p.id)?.keyUrl ? ` (keys: ${presetOf(p.id)?.keyUrl})` : ""}`,
    };
  }
  if (!res.ok) {
    await res.body?.cancel();
    return {
      provider: p.id,
      level: "warn",
      result: `HTTP ${res.status} from ${url}`,
      fix:
        res.status === 404
          ? `is ${p.baseUrl} the API's base URL? (${baseVar})`
          : "the provider may be down or rate limiting; try again later",
    };
  }
  const listing = wire.listing;
  const ids = await res
    .json()
    .then((body) => listing.ids(body))
    .catch(() => [] as string[]);
  if (ids.length > 0 && !ids.includes(p.defaultModel)) {
    return {
      provider: p.id,
      level: "warn",
      result: `key accepted, ${ids.length} models, not "${p.defaultModel}"`,
      fix: p.keyOptional
        ? `load the model on the server (ollama pull ${p.defaultModel}), or set default_model under [providers.${p.id}]`
        : `set default_model under [providers.${p.id}] to one it serves`,
    };
  }
  return {
    provider: p.id,
    level: "ok",
    result: `key accepted${ids.length ? `, ${ids.length} models` : ""}`,
  };
}

/** The system error under a fetch failure (ECONNREFUSED, ENOTFOUND, ...), else its message. */
function causeOf(err: unknown): string {
  type Failure = { code?: string; message?: string; cause?: Failure; errors?: Failure[] };
  let e = err as Failure | undefined;
  for (let depth = 0; e && depth < 4; depth++) {
    if (e.code && /^E[A-Z]+$/.test(e.code)) return e.code;
    e = e.cause ?? e.errors?.[0];
  }
  return (err as Error).message;
}
