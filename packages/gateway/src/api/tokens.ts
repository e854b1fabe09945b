import { createHash, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { newId, randomToken } from "@lobu/core";
import type { KeyValue } from "../store/port.ts";

export type TokenRole = "admin" | "client";

export interface ApiToken {
  id: string;
  name: string;
  role: TokenRole;
  createdAt: number;
  lastUsedAt?: number;
}

const TOKEN_PREFIX = "lobu_tok_";
const hash = (token: string) => createHash("sha256").update(token).digest("hex");
const key = (digest: string) => `apitoken:${digest}`;

/** Where the bootstrap admin token is written for local CLIs (mode 0600). */
export const ADMIN_TOKEN_FILE = "admin-token";

/**
 * REST API tokens. Only a SHA-256 of each token is stored; the token itself is
 * shown once at creation. `admin` tokens manage agents, secrets and sandboxes;
 * `client` tokens send messages and read conversations (an app integrating
 * Lobu on behalf of its users).
 */
export class TokenStore {
  private readonly kv: KeyValue;
  private readonly envAdminToken: string | undefined;

  constructor(kv: KeyValue, envAdminToken?: string) {
    this.kv = kv;
    this.envAdminToken = envAdminToken || undefined;
  }

  async create(name: string, role: TokenRole): Promise<{ token: string; info: ApiToken }> {
    const token = `${TOKEN_PREFIX}${randomToken(24)}`;
    const info: ApiToken = { id: newId("tok"), name, role, createdAt: Date.now() };
    await this.kv.set(key(hash(token)), JSON.stringify(info));
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
    const raw = await this.kv.get(key(hash(token)));
    return raw ? (JSON.parse(raw) as ApiToken) : null;
  }

  async list(): Promise<ApiToken[]> {
    return (await this.kv.list("apitoken:")).map((e) => JSON.parse(e.value) as ApiToken);
  }

  async revoke(id: string): Promise<boolean> {
    for (const e of await this.kv.list("apitoken:")) {
      if ((JSON.parse(e.value) as ApiToken).id === id) return this.kv.del(e.key);
    }
    return false;
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
}
