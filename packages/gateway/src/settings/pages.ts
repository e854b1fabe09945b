import { Hono } from "hono";
import { serveAsset, servePage, type WebBundle } from "../http/web.ts";
import type { SettingsSite } from "./site.ts";

/** `GET /settings`, the React page, and `/settings/assets/*`, its bundle. */
export function pageRoutes(site: SettingsSite, bundle: WebBundle): Hono {
  const r = new Hono();
  r.get("/settings", (c) => servePage(c, bundle, site.page()));
  r.get("/settings/", (c) => c.redirect("/settings", 301));
  r.get("/settings/assets/:name", (c) => serveAsset(c, bundle, site.https));
  return r;
}
