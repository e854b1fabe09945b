import { ConnectorToken } from "./client.ts";
import { GRAPH_SCOPE, type TeamsSettings, tenantTokenUrl } from "./config.ts";

const TENANT = /^[0-9a-f-]{36}$/i;

/**
 * The bot's Microsoft Graph tokens (client credentials, its own application
 * permissions), one per tenant: Graph answers only with a token from the
 * tenant whose data is read, so each comes from that tenant's endpoint.
 * Shared by files (graph-files.ts) and history (history.ts).
 */
export class GraphTokens {
  readonly #settings: Pick<TeamsSettings, "appId" | "appPassword" | "tokenUrl">;
  readonly #tokens = new Map<string, ConnectorToken>();

  constructor(settings: Pick<TeamsSettings, "appId" | "appPassword" | "tokenUrl">) {
    this.#settings = settings;
  }

  /** Whether `tenant` looks like an Entra tenant id (a GUID). */
  static valid(tenant: string | undefined): tenant is string {
    return !!tenant && TENANT.test(tenant);
  }

  /** A token for `tenant`; throws when the tenant is not a GUID or Entra refuses. */
  async get(tenant: string): Promise<string> {
    if (!GraphTokens.valid(tenant)) throw new Error("the tenant is unknown");
    let token = this.#tokens.get(tenant);
    if (!token) {
      // Tenants come from signed activities; still, the cache stays bounded.
      if (this.#tokens.size >= 1000) this.#tokens.clear();
      token = new ConnectorToken(
        { ...this.#settings, tokenUrl: tenantTokenUrl(this.#settings.tokenUrl, tenant) },
        GRAPH_SCOPE,
      );
      this.#tokens.set(tenant, token);
    }
    return token.get();
  }
}
