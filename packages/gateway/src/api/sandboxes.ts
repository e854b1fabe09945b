import { LobuError } from "@lobu/core";
import { Hono } from "hono";
import type { GatewayServices } from "../services.ts";
import { type ApiEnv, requireAdmin } from "./auth.ts";

/** Operator controls for sandboxes: `/api/v1/sandboxes` (admin tokens only). */
export function sandboxRoutes(s: GatewayServices): Hono<ApiEnv> {
  const r = new Hono<ApiEnv>();
  r.use("*", async (c, next) => {
    requireAdmin(c.get("token"));
    await next();
  });
  r.get("/", async (c) => c.json({ sandboxes: await s.sandboxes.list() }));
  r.get("/:id", async (c) => {
    const status = await s.sandboxes.status(c.req.param("id"));
    if (!status) throw new LobuError("not_found", "no such sandbox", { status: 404 });
    return c.json(status);
  });
  r.post("/:id/stop", async (c) => {
    const id = c.req.param("id");
    if (!(await s.sandboxes.record(id)))
      throw new LobuError("not_found", "no such sandbox", { status: 404 });
    const stopped = await s.sandboxes.stop(id, "operator");
    s.audit.record({ action: "sandbox.stopped", actor: `api:${c.get("token").id}`, sandboxId: id });
    return c.json({ stopped });
  });
  return r;
}
