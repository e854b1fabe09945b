import { Hono } from "hono";
import type { GatewayServices } from "../services.ts";

/** The settings page and its API (mounted at the gateway root). */
export function settingsRoutes(_services: GatewayServices): Hono {
  return new Hono();
}
