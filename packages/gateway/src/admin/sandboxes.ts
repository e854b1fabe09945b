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
  sandboxes: Pick<SandboxManager, "list" | "driverName" | "runningCount" | "record" | "stop">;
  audit: Pick<AuditLog, "record">;
}

/** `/sandboxes`: every sandbox, most recently active first, and stopping one (the UI's one write). */
export function sandboxRoutes(d: AdminSandboxDeps): Hono<AdminEnv> {
  const r = new Hono<AdminEnv>();
  r.get("/sandboxes", listSandboxes(d));
  r.post("/sandboxes/:id/stop", stopSandbox(d));
  return r;
}

function listSandboxes(d: AdminSandboxDeps) {
  return adminRoute({}, async (c) => {
    const list = await d.sandboxes.list();
    list.sort((a, b) => b.lastActiveAt - a.lastActiveAt);
    const view: SandboxesView = {
      driver: d.sandboxes.driverName,
      running: d.sandboxes.runningCount,
      limits: {
        memoryMb: d.config.sandbox.memory_mb,
        diskMb: d.config.sandbox.disk_mb,
        cpus: d.config.sandbox.cpus,
      },
      sandboxes: list,
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
