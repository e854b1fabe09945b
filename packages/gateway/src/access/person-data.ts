import type { PersonDataKind } from "../domain/person-data.ts";
import type { KeyValue } from "../store/port.ts";
import { scanKeys } from "../store/scan.ts";
import { ApiToken } from "./tokens.ts";
import { Claim, WebSession } from "./web-sessions.ts";

/** Settings sessions and claims (settings links) of the person, by their stored key. */
async function sessionKeys(kv: KeyValue, userKey: string): Promise<string[]> {
  const out: string[] = [];
  for (const prefix of ["web:session:", "web:claim:"]) {
    for await (const { key, value } of scanKeys(kv, prefix)) {
      const schema = prefix === "web:session:" ? WebSession : Claim;
      const rec = schema.safeParse(safeJson(value));
      if (rec.success && "userKey" in rec.data && rec.data.userKey === userKey) out.push(key);
    }
  }
  return out;
}

/** The person's own `user` API tokens: an `api` person is `api:<namespace>:<user>`. */
async function userTokens(
  kv: KeyValue,
  userKey: string,
): Promise<{ key: string; token: ApiToken }[]> {
  const out: { key: string; token: ApiToken }[] = [];
  for await (const { key, value } of scanKeys(kv, "apitoken:")) {
    const rec = ApiToken.safeParse(safeJson(value));
    if (!rec.success || rec.data.role !== "user") continue;
    if (`api:${rec.data.namespace ?? ""}:${rec.data.user ?? ""}` === userKey)
      out.push({ key, token: rec.data });
  }
  return out;
}

function safeJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

/**
 * What lets the person in: settings sessions, unused settings links, and the
 * `user` API tokens that act for them. Erasing signs them out everywhere; the
 * export names the tokens (never a token or its digest).
 */
export function accessData(kv: KeyValue): PersonDataKind {
  return {
    name: "access",
    export: async (p) => ({
      signedInSessions: (await sessionKeys(kv, p.userKey)).filter((k) =>
        k.startsWith("web:session:"),
      ).length,
      apiTokens: (await userTokens(kv, p.userKey)).map(({ token: t }) => ({
        id: t.id,
        name: t.name,
        createdAt: t.createdAt,
        ...(t.expiresAt !== undefined ? { expiresAt: t.expiresAt } : {}),
      })),
    }),
    erase: async (p) => {
      let sessions = 0;
      for (const key of await sessionKeys(kv, p.userKey)) if (await kv.del(key)) sessions++;
      let tokens = 0;
      for (const { key } of await userTokens(kv, p.userKey)) if (await kv.del(key)) tokens++;
      return { sessions, apiTokens: tokens };
    },
  };
}
