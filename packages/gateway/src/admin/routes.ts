import { Hono } from "hono";
import type { GatewayServices } from "../services.ts";

/** The admin UI and its API (mounted at the gateway root). */
export function adminRoutes(_services: GatewayServices): Hono {
  return new Hono();
}
