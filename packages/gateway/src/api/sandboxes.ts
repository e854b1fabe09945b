import { Hono } from "hono";
import { z } from "zod";
import { callerActor } from "../access/actors.ts";
import type { ApiEnv } from "../access/auth.ts";
import { endpoint } from "../access/endpoint.ts";
import type { AuditLog } from "../audit/log.ts";
import { jsonBody } from "../http/errors.ts";
import { limitParam, pageCursorParam } from "../http/query.ts";
import { notFound } from "../http/refusals.ts";
import type { SandboxManager } from "../runtime/sandbox-manager.ts";
import { snapshotTime } from "../sandbox/snapshots.ts";
import type { PlaceholderRegistry } from "../secrets/placeholders.ts";

const ResetBody = z.strictObject({
  /** Delete the volume and its snapshots instead of restoring the last good snapshot. */
  wipe: z.boolean().default(false),
});

/** exec() cannot pass a NUL byte in an argument. */
const Arg = z
  .string()
  .max(10_000)
  .regex(/^[^\0]*$/, "arguments cannot contain NUL bytes");
const ExecBody = z
  .strictObject({
    /** A program and its arguments, run as they are (no shell), in the volume as the agent user. */
    argv: z.array(Arg).min(1).max(1000).optional(),
    /** A command line for /bin/sh -c (pipes, `;`, globs): the shell form, asked for explicitly. */
    command: Arg.min(1).optional(),
    timeoutSec: z.number().int().min(1).max(600).default(60),
  })
  .refine((b) => (b.argv === undefined) !== (b.command === undefined), {
    message: "give exactly one of argv (a program and its arguments) or command (a shell line)",
  })
  .refine((b) => (b.argv ?? []).reduce((n, a) => n + a.length, 0) <= 100_000, {
    message: "argv is longer than 100,000 characters in total",
    path: ["argv"],
  });

/** What the sandbox routes use. */
export interface SandboxRouteDeps {
  sandboxes: SandboxManager;
  /** A reset sandbox's placeholders are revoked. */
  placeholders: Pick<PlaceholderRegistry, "revokeSandbox">;
  audit: Pick<AuditLog, "record">;
}

/** Operator controls for sandboxes: `/api/v1/sandboxes` (admin tokens only). */
export function sandboxRoutes(d: SandboxRouteDeps): Hono<ApiEnv> {
  const r = new Hono<ApiEnv>();
  r.get("/", listSandboxes(d));
  r.get("/:id", readSandbox(d));
  r.post("/:id/stop", stopSandbox(d));
  r.post("/:id/reset", resetSandbox(d));
  r.post("/:id/exec", execInSandbox(d));
  return r;
}

const noSuchSandbox = () => notFound("no such sandbox");

function listSandboxes(d: SandboxRouteDeps) {
  return endpoint(
    "sandboxes.manage",
    { cursor: pageCursorParam(), limit: limitParam(200) },
    async (c, { query }) =>
      c.json(
        await d.sandboxes.page({
          ...(query.cursor !== undefined ? { after: query.cursor } : {}),
          limit: query.limit,
        }),
      ),
  );
}

function readSandbox(d: SandboxRouteDeps) {
  return endpoint("sandboxes.manage", {}, async (c) => {
    const status = await d.sandboxes.status(c.req.param("id") ?? "");
    if (!status) throw noSuchSandbox();
    return c.json(status);
  });
}

function stopSandbox(d: SandboxRouteDeps) {
  return endpoint("sandboxes.manage", {}, async (c) => {
    const id = c.req.param("id") ?? "";
    if (!(await d.sandboxes.record(id))) throw noSuchSandbox();
    const stopped = await d.sandboxes.stop(id, "operator");
    d.audit.record({ action: "sandbox.stopped", actor: callerActor(c), sandboxId: id });
    return c.json({ stopped });
  });
}

/**
 * Stop the sandbox and give it a clean workspace: its last good snapshot, or
 * (`wipe`) an empty volume. Its placeholders are revoked (new ones are issued
 * with the next turn), so anything the agent copied out of them is useless.
 */
function resetSandbox(d: SandboxRouteDeps) {
  return endpoint("sandboxes.manage", {}, async (c) => {
    const id = c.req.param("id") ?? "";
    // An empty body means the defaults (Hono caches the body, so jsonBody can read it again).
    const empty = !(await c.req.text()).trim();
    const { wipe } = empty ? ResetBody.parse({}) : await jsonBody(c, ResetBody);
    const actor = callerActor(c);
    const result = await d.sandboxes.reset(id, { wipe, by: actor });
    if (!result) throw noSuchSandbox();
    const revokedPlaceholders = await d.placeholders.revokeSandbox(id);
    const record = await d.sandboxes.record(id);
    d.audit.record({
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
  });
}

/** Run a command inside a running sandbox, for diagnosis (process driver). */
function execInSandbox(d: SandboxRouteDeps) {
  return endpoint("sandboxes.manage", {}, async (c) => {
    const id = c.req.param("id") ?? "";
    const record = await d.sandboxes.record(id);
    if (!record) throw noSuchSandbox();
    const { argv, command, timeoutSec } = await jsonBody(c, ExecBody);
    const result = await d.sandboxes.exec(id, argv ?? command!, { timeoutMs: timeoutSec * 1000 });
    d.audit.record({
      action: "sandbox.exec",
      actor: callerActor(c),
      sandboxId: id,
      agentId: record.key.agentId,
      details: {
        ...(argv ? { argv: argv.slice(0, 20).map((a) => a.slice(0, 200)) } : {}),
        ...(command ? { command: command.slice(0, 200) } : {}),
        exitCode: result.exitCode,
      },
    });
    return c.json(result);
  });
}
