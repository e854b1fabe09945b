import type { Context } from "hono";
import type { ApiEnv } from "./auth.ts";
import type { ApiToken } from "./tokens.ts";

/**
 * Who did something, as audit records (and answers) name them. An API token
 * is `api:<token id>`: the id, never the name, which is not unique. A person
 * (settings page, chat) is their user key.
 */

export function tokenActor(token: Pick<ApiToken, "id">): string {
  return `api:${token.id}`;
}

/** The token calling an /api/v1 route. */
export function callerActor(c: Context<ApiEnv>): string {
  return tokenActor(c.get("token"));
}

export function personActor(person: { userKey: string }): string {
  return person.userKey;
}
