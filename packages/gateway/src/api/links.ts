import { Hono } from "hono";
import { callerActor } from "../access/actors.ts";
import type { ApiEnv } from "../access/auth.ts";
import { endpoint } from "../access/endpoint.ts";
import { parsePersonKey } from "../domain/person-data.ts";
import type { Accounts } from "../people/accounts.ts";

/** What the linked-identities routes use. */
export interface LinkRouteDeps {
  accounts: Pick<Accounts, "all" | "unlink">;
}

/**
 * `/api/v1/admin/links`: the accounts whose identities are linked
 * (docs/identity.md), for the operator: listed, and an identity unlinked
 * (it goes back to its own data). Admin tokens only.
 */
export function linkRoutes(d: LinkRouteDeps): Hono<ApiEnv> {
  const r = new Hono<ApiEnv>();
  r.get(
    "/",
    endpoint("links.read", {}, async (c) => c.json({ accounts: await d.accounts.all() })),
  );
  r.delete(
    "/:userKey",
    endpoint("links.manage", {}, async (c) => {
      const person = parsePersonKey(c.req.param("userKey") ?? "");
      return c.json({ unlinked: await d.accounts.unlink(person.userKey, callerActor(c)) });
    }),
  );
  return r;
}
