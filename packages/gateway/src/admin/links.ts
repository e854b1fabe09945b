import type { LinkedAccountRow } from "@lobu/core/views";
import { Hono } from "hono";
import type { Accounts } from "../people/accounts.ts";
import { type AdminEnv, adminRoute } from "./env.ts";

/** What the admin UI's list of linked accounts uses. */
export interface AdminLinkDeps {
  accounts: Pick<Accounts, "all">;
}

/** `/links`: every account with linked identities (docs/identity.md), read-only. */
export function linkRoutes(d: AdminLinkDeps): Hono<AdminEnv> {
  const r = new Hono<AdminEnv>();
  r.get(
    "/links",
    adminRoute({}, async (c) => {
      const accounts: LinkedAccountRow[] = await d.accounts.all();
      return c.json({ accounts });
    }),
  );
  return r;
}
