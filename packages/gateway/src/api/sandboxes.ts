import { LobuError } from "@lobu/core";
import { Hono } from "hono";
import { z } from "zod";
import { jsonBody } from "../http/errors.ts";
import { snapshotTime } from "../sandbox/snapshots.ts";
import type { GatewayServices } from "../services.ts";
import type { ApiEnv } from "./auth.ts";
import { endpoint } from "./endpoint.ts";

const ResetBody = z.strictObject({
  /** Delete the volume and its snapshots instead of restoring the last good snapshot. */
  wipe: z.boolean().default(false),
});

const ExecBody = z.strictObject({
  /** Run by /bin/sh in the volume, as the sandbox's agent user. */
  command: z.string().min(1).max(10_000),
  timeoutSec: z.number().int().min(1).max(600).default(60),
});

/** Operator controls for sandboxes: `/api/v1/sandboxes` (admin tokens only). */
export function sandboxRoutes(s: GatewayServices): Hono<ApiEnv> {
  const r = new Hono<ApiEnv>();
  r.get(
    "/",
    endpoint("sandboxes.manage", {}, async (c) => c.json({ sandboxes: await s.sandboxes.list() })),
  );
  r.get(
    "/:id",
    endpoint("sandboxes.manage", {}, async (c) => {
      const status = await s.sandboxes.status(c.req.param("id") ?? "");
      if (!status) throw new LobuError("not_found", "no such sandbox", { status: 404 });
      return c.json(status);
    }),
  );
  r.post(
    "/:id/stop",
    endpoint("sandboxes.manage", {}, async (c) => {
      const id = c.req.param("id") ?? "";
      if (!(await s.sandboxes.record(id)))
        throw new LobuError("not_found", "no such sandbox", { status: 404 });
      const stopped = await s.sandboxes.stop(id, "operator");
      s.audit.record({
        action: "sandbox.stopped",
        actor: `api:${c.get("token").id}`,
        sandboxId: id,
      });
      return c.json({ stopped });
    }),
  );
  /**
   * Stop the sandbox and give it a clean workspace: its last good snapshot, or
   * (`wipe`) an empty volume. Its placeholders are revoked (new ones are issued
   * with the next turn), so anything the agent copied out of them is useless.
   */
  r.post(
    "/:id/reset",
    endpoint("sandboxes.manage", {}, async (c) => {
      const id = c.req.param("id") ?? "";
      // An empty body means the defaults (Hono caches the body, so jsonBody can read it again).
      const empty = !(await c.req.text()).trim();
      const { wipe } = empty ? ResetBody.parse({}) : await jsonBody(c, ResetBody);
      const actor = `api:${c.get("token").id}`;
      const result = await s.sandboxes.reset(id, { wipe, by: actor });
      if (!result) throw new LobuError("not_found", "no such sandbox", { status: 404 });
      const revokedPlaceholders = await s.placeholders.revokeSandbox(id);
      const record = await s.sandboxes.record(id);
      s.audit.record({
        action: "sandbox.reset",
        actor,
        sandboxId: id,
        agentId: record?.key.agentId,
        details: {
          wipe,
          snapshot: result.snapshot ? snapshotTime(result.snapshot.at) : null,
          revokedPlaceholders,
        },
      });
      return c.json({
        ...result,
        restored: result.snapshot ? `the snapshot of ${snapshotTime(result.snapshot.at)}` : "wiped",
        revokedPlaceholders,
      });
    }),
  );
  /** Run a command inside a running sandbox, for diagnosis (process driver). */
  r.post(
    "/:id/exec",
    endpoint("sandboxes.manage", {}, async (c) => {
      const id = c.req.param("id") ?? "";
      const record = await s.sandboxes.record(id);
      if (!record) throw new LobuError("not_found", "no such sandbox", { status: 404 });
      const { command, timeoutSec } = await jsonBody(c, ExecBody);
      const result = await s.sandboxes.exec(id, command, { timeoutMs: timeoutSec * 1000 });
      s.audit.record({
        action: "sandbox.exec",
        actor: `api:${c.get("token").id}`,
        sandboxId: id,
        agentId: record.key.agentId,
        details: { command: command.slice(0, 200), exitCode: result.exitCode },
      });
      return c.json(result);
    }),
  );
  return r;
}
