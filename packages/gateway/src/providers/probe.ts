import { presetOf } from "./presets.ts";
import { KEYLESS, type ProviderInfo } from "./registry.ts";

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
 * models (`GET /v1/models`, `GET /models`), which costs no tokens. A listing
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
  const url = p.type === "anthropic" ? `${p.baseUrl}/v1/models` : `${p.baseUrl}/models`;
  const headers: Record<string, string> = {};
  if (key !== KEYLESS) {
    if (p.type === "anthropic") {
      headers["x-api-key"] = key;
      headers["anthropic-version"] = "2023-06-01";
    } else headers.authorization = `Bearer ${key}`;
  }
  let res: Response;
  try {
    res = await (opts.fetch ?? fetch)(url, {
      headers,
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
  if (res.status === 401 || res.status === 403) {
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
  const ids = await res
    .json()
    .then((body) =>
      ((body as { data?: { id?: unknown }[] }).data ?? []).map((m) => String(m.id ?? "")),
    )
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
