import type { LobuConfig } from "@lobu/core";
import type { SandboxesView } from "@lobu/core/views";
import { Hono } from "hono";
import type { AuditLog } from "../audit/log.ts";
import { notFound } from "../http/refusals.ts";
import type { SandboxManager } from "../runtime/sandbox-manager.ts";
import { type AdminEnv, adminRoute } from "./env.ts";

/** What the admin UI's sandbox view uses. */
export interface AdminSandboxDeps {
  config: LobuConfig;
  sandboxes: Pick<SandboxManager, "recent" | "driverName" | "runningCount" | "record" | "stop">;
  audit: Pick<AuditLog, "record">;
}

/** At most this many rows: the view is polled every 2 s, and each row measures its sandbox. */
export const ADMIN_SANDBOX_ROWS = 200;

/** `/sandboxes`: the most recently active sandboxes first, and stopping one (the UI's one write). */
export function sandboxRoutes(d: AdminSandboxDeps): Hono<AdminEnv> {
  const r = new Hono<AdminEnv>();
  r.get("/sandboxes", listSandboxes(d));
  r.post("/sandboxes/:id/stop", stopSandbox(d));
  return r;
}

function listSandboxes(d: AdminSandboxDeps) {
  return adminRoute({}, async (c) => {
    const { sandboxes, total } = await d.sandboxes.recent(ADMIN_SANDBOX_ROWS);
    const view: SandboxesView = {
      driver: d.sandboxes.driverName,
      running: d.sandboxes.runningCount,
      limits: {
        memoryMb: d.config.sandbox.memory_mb,
        diskMb: d.config.sandbox.disk_mb,
        cpus: d.config.sandbox.cpus,
      },
      total,
      sandboxes,
    };
    return c.json(view);
  });
}

function stopSandbox(d: AdminSandboxDeps) {
  return adminRoute({}, async (c) => {
    const id = c.req.param("id") ?? "";
    if (!(await d.sandboxes.record(id))) throw notFound("no such sandbox");
    const stopped = await d.sandboxes.stop(id, "operator");
    d.audit.record({ action: "sandbox.stopped", actor: c.get("session").actor, sandboxId: id });
    return c.json({ stopped });
  });
}
