import { Hono } from "hono";
import type { ApiEnv } from "../access/auth.ts";
import { endpoint } from "../access/endpoint.ts";
import { type ProviderRegistry, providerSecretName } from "../providers/registry.ts";
import type { SecretStore } from "../secrets/store.ts";

/** What the provider listing uses. */
export interface ProviderRouteDeps {
  providers: Pick<ProviderRegistry, "list">;
  secrets: Pick<SecretStore, "meta">;
}

/** `/api/v1/providers`: the configured model providers, and whether everyone has a key for each. */
export function providerRoutes(d: ProviderRouteDeps): Hono<ApiEnv> {
  const r = new Hono<ApiEnv>();
  r.get("/", listProviders(d));
  return r;
}

function listProviders(d: ProviderRouteDeps) {
  return endpoint("providers.read", {}, async (c) => {
    const providers = await Promise.all(
      d.providers.list().map(async (p) => ({
        id: p.id,
        name: p.name,
        type: p.type,
        baseUrl: p.baseUrl,
        defaultModel: p.defaultModel,
        installationKey:
          (await d.secrets.meta({
            scope: { kind: "installation" },
            name: providerSecretName(p.id),
          })) !== null,
      })),
    );
    return c.json({ providers });
  });
}
