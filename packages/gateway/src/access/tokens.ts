import { createHash, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { newId, randomToken } from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import type { KeyValue } from "../store/port.ts";
import { readRecord } from "../util/stored-record.ts";

export const TOKEN_ROLES = ["admin", "client", "user"] as const;
export const TokenRole = z.enum(TOKEN_ROLES);
export type TokenRole = z.infer<typeof TokenRole>;

/** A token's record, stored as `apitoken:<sha256 of the token>`. */
export const ApiToken = z.object({
  id: z.string().min(1),
  name: z.string(),
  role: TokenRole,
  /**
   * The `api` users a `client` or `user` token acts for: `api:<namespace>:<user>`
   * (docs/api.md, Roles). Client tokens made before namespaces existed have
   * none and act in a namespace of their own id.
   */
  namespace: z.string().optional(),
  /** The one end user a `user` token acts for. */
  user: z.string().optional(),
  /** The token that created this one (a client token minting user tokens). */
  issuedBy: z.string().optional(),
  createdAt: z.number(),
  /** After this (ms since epoch) the token is refused. */
  expiresAt: z.number().optional(),
  lastUsedAt: z.number().optional(),
});
export type ApiToken = z.infer<typeof ApiToken>;

/** What a new token is bound to, beyond its name and role. */
export type TokenBinding = Pick<ApiToken, "namespace" | "user" | "issuedBy" | "expiresAt">;

const TOKEN_PREFIX = "lobu_tok_";
const hash = (token: string) => createHash("sha256").update(token).digest("hex");
const key = (digest: string) => `apitoken:${digest}`;

const live = (t: ApiToken) => t.expiresAt === undefined || t.expiresAt > Date.now();

/** Where the bootstrap admin token is written for local CLIs (mode 0600). */
export const ADMIN_TOKEN_FILE = "admin-token";

/**
 * REST API tokens. Only a SHA-256 of each token is stored; the token itself is
 * shown once at creation. `admin` tokens manage agents, secrets and sandboxes;
 * `client` tokens act for the `api` users of their namespace (an app
 * integrating Lobu on behalf of its users); `user` tokens act for one of them.
 * What each may do is in permissions.ts. An unreadable token record (logged)
 * never authenticates and is left out of lists.
 */
export class TokenStore {
  private readonly kv: KeyValue;
  private readonly log: Logger;
  private readonly envAdminToken: string | undefined;

  constructor(kv: KeyValue, log: Logger, envAdminToken?: string) {
    this.kv = kv;
    this.log = log;
    this.envAdminToken = envAdminToken || undefined;
  }

  async create(
    name: string,
    role: TokenRole,
    binding: TokenBinding = {},
  ): Promise<{ token: string; info: ApiToken }> {
    const token = `${TOKEN_PREFIX}${randomToken(24)}`;
    const id = newId("tok");
    const info: ApiToken = {
      id,
      name,
      role,
      // A client token without a namespace gets one of its own: it shares its users with nobody.
      ...(role === "client" ? { namespace: binding.namespace ?? id } : {}),
      ...(role === "user" ? { namespace: binding.namespace, user: binding.user } : {}),
      ...(binding.issuedBy ? { issuedBy: binding.issuedBy } : {}),
      createdAt: Date.now(),
      ...(binding.expiresAt ? { expiresAt: binding.expiresAt } : {}),
    };
    await this.kv.set(
      key(hash(token)),
      JSON.stringify(info),
      info.expiresAt ? { ttlMs: Math.max(1, info.expiresAt - Date.now()) } : undefined,
    );
    return { token, info };
  }

  async verify(token: string): Promise<ApiToken | null> {
    if (this.envAdminToken) {
      const a = Buffer.from(hash(token));
      const b = Buffer.from(hash(this.envAdminToken));
      if (timingSafeEqual(a, b))
        return { id: "env", name: "LOBU_ADMIN_TOKEN", role: "admin", createdAt: 0 };
    }
    if (!token.startsWith(TOKEN_PREFIX)) return null;
    const k = key(hash(token));
    const raw = await this.kv.get(k);
    if (!raw) return null;
    const info = this.#decode(k, raw, "refused");
    return info && live(info) ? info : null;
  }

  async list(): Promise<ApiToken[]> {
    return (await this.kv.list("apitoken:"))
      .flatMap((e) => this.#decode(e.key, e.value) ?? [])
      .filter(live);
  }

  async get(id: string): Promise<ApiToken | null> {
    return (await this.list()).find((t) => t.id === id) ?? null;
  }

  /** Revoke a token and every token it issued (a client's user tokens go with it). */
  async revoke(id: string): Promise<boolean> {
    let found = false;
    for (const e of await this.kv.list("apitoken:")) {
      const info = this.#decode(e.key, e.value);
      if (!info) continue;
      if (info.id === id) found = (await this.kv.del(e.key)) || found;
      else if (info.issuedBy === id) await this.kv.del(e.key);
    }
    return found;
  }

  /**
   * First start: create an admin token and leave it in the data dir for local
   * CLIs (`lobu chat` reads it). Later starts reuse the file while it is valid.
   */
  async bootstrap(dataDir: string): Promise<{ file: string; created: boolean }> {
    const file = join(dataDir, ADMIN_TOKEN_FILE);
    if (existsSync(file)) {
      const existing = readFileSync(file, "utf8").trim();
      if (await this.verify(existing)) return { file, created: false };
    }
    const { token } = await this.create("bootstrap admin", "admin");
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    return { file, created: true };
  }

  #decode(storeKey: string, raw: string, what = "skipped"): ApiToken | undefined {
    return readRecord(ApiToken, raw, { record: "api token", key: storeKey }, this.log, what);
  }
}
