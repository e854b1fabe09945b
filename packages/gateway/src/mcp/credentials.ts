import { createHash } from "node:crypto";
import { holdSecrets, releaseSecrets } from "@lobu/core";
import {
  type OAuthClientInformationMixed,
  type OAuthTokens,
  OAuthTokensSchema,
} from "@modelcontextprotocol/sdk/shared/auth.js";
import { z } from "zod";
import type { SecretRef, SecretStore } from "../secrets/store.ts";

/**
 * What the gateway holds for one person's connection to one MCP server: the
 * OAuth tokens and the client they were issued to (`verifier` is only
 * forgotten: flows keep theirs in the flow record, see connect-flows.ts). Each is a secret of the person's `person` scope in the
 * encrypted secret store (sealed under the master key, its AAD naming the
 * person and the item, re-encrypted by `lobu master-key rotate`). That scope
 * is never resolved for a sandbox: nothing here reaches a worker, the model
 * or a log (the current tokens of each connection are held for log
 * redaction, replaced on refresh and dropped when forgotten).
 */
export type CredentialItem = "tokens" | "client" | "verifier";

/** When the tokens were saved: their `expires_in` counts from then. */
const StoredTokens = z.object({ tokens: z.unknown(), savedAt: z.number() });
/** The registration as the server returned it (auth() reads its token_endpoint_auth_method). */
const StoredClient = z.looseObject({ client_id: z.string().min(1) });

export interface SavedTokens {
  tokens: OAuthTokens;
  savedAt: number;
}

export class McpCredentials {
  readonly #secrets: SecretStore;

  constructor(secrets: SecretStore) {
    this.#secrets = secrets;
  }

  async tokens(userKey: string, serverId: string): Promise<SavedTokens | undefined> {
    const stored = StoredTokens.safeParse(parseJson(await this.#get(userKey, serverId, "tokens")));
    if (!stored.success) return undefined;
    const tokens = OAuthTokensSchema.safeParse(stored.data.tokens);
    if (!tokens.success) return undefined;
    redact(userKey, serverId, tokens.data);
    return { tokens: tokens.data, savedAt: stored.data.savedAt };
  }

  async saveTokens(userKey: string, serverId: string, tokens: OAuthTokens): Promise<void> {
    redact(userKey, serverId, tokens);
    await this.#set(userKey, serverId, "tokens", JSON.stringify({ tokens, savedAt: Date.now() }));
  }

  async client(
    userKey: string,
    serverId: string,
  ): Promise<OAuthClientInformationMixed | undefined> {
    const parsed = StoredClient.safeParse(parseJson(await this.#get(userKey, serverId, "client")));
    return parsed.success ? (parsed.data as OAuthClientInformationMixed) : undefined;
  }

  async saveClient(
    userKey: string,
    serverId: string,
    info: OAuthClientInformationMixed,
  ): Promise<void> {
    await this.#set(userKey, serverId, "client", JSON.stringify(info));
  }

  /**
   * The gateway's registration (RFC 7591) at a server's authorization server
   * for this redirect URI, shared by everyone who connects: a client is the
   * gateway, not a person (each person's grant is their own either way). The
   * SDK stamps it with the authorization server it was registered at and
   * registers again when the server names another one.
   */
  async sharedClient(
    serverId: string,
    redirectUrl: string,
  ): Promise<OAuthClientInformationMixed | undefined> {
    let raw: string | null;
    try {
      raw = await this.#secrets.get(sharedRef(serverId, redirectUrl));
    } catch {
      // Undecryptable: as good as none; the next connect registers again.
      return undefined;
    }
    const parsed = StoredClient.safeParse(parseJson(raw ?? undefined));
    return parsed.success ? (parsed.data as OAuthClientInformationMixed) : undefined;
  }

  async saveSharedClient(
    serverId: string,
    redirectUrl: string,
    info: OAuthClientInformationMixed,
  ): Promise<void> {
    await this.#secrets.set(sharedRef(serverId, redirectUrl), JSON.stringify(info));
  }

  async forgetSharedClient(serverId: string, redirectUrl: string): Promise<void> {
    await this.#secrets.delete(sharedRef(serverId, redirectUrl));
  }

  async forget(userKey: string, serverId: string, items: readonly CredentialItem[]): Promise<void> {
    if (items.includes("tokens")) releaseSecrets(redactionOwner(userKey, serverId));
    for (const item of items) await this.#secrets.delete(ref(userKey, serverId, item));
  }

  async #get(userKey: string, serverId: string, item: CredentialItem): Promise<string | undefined> {
    try {
      return (await this.#secrets.get(ref(userKey, serverId, item))) ?? undefined;
    } catch {
      // Undecryptable (another master key, tampered): as good as none; connecting again replaces it.
      return undefined;
    }
  }

  async #set(userKey: string, serverId: string, item: CredentialItem, value: string) {
    await this.#secrets.set(ref(userKey, serverId, item), value);
  }
}

/** An installation secret named after the server and (a digest of) the redirect URI. */
function sharedRef(serverId: string, redirectUrl: string): SecretRef {
  const redirect = createHash("sha256").update(redirectUrl).digest("hex").slice(0, 16);
  return { scope: { kind: "installation" }, name: `lobu.mcp-client.${serverId}.${redirect}` };
}

function ref(userKey: string, serverId: string, item: CredentialItem): SecretRef {
  return { scope: { kind: "person", userKey }, name: `mcp.${serverId}.${item}` };
}

/**
 * Log lines never show a token, even if one reached an error message. The
 * connection's current pair replaces its previous one in the redaction
 * registry (a refresh), and forgetting the tokens drops it: the registry holds
 * one pair per connection, not every token ever read.
 */
function redact(userKey: string, serverId: string, tokens: OAuthTokens): void {
  holdSecrets(redactionOwner(userKey, serverId), [tokens.access_token, tokens.refresh_token]);
}

function redactionOwner(userKey: string, serverId: string): string {
  return `mcp-tokens\0${userKey}\0${serverId}`;
}

function parseJson(raw: string | undefined): unknown {
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}
