import type { LobuConfig } from "@lobu/core";
import { Hono } from "hono";
import type { ApiEnv } from "../access/auth.ts";
import { endpoint } from "../access/endpoint.ts";
import { namespaceOf } from "../access/permissions.ts";
import type { StreamSlots } from "../http/stream-slots.ts";
import type { SandboxManager } from "../runtime/sandbox-manager.ts";
import type { Store } from "../store/port.ts";
import { streamHolder } from "./streams.ts";

/** What `GET /api/v1/info` reports. */
export interface InfoDeps {
  config: LobuConfig;
  instanceId: string;
  /** Read while handling a request (the gateway listens by then). */
  readonly publicUrl: string;
  store: Pick<Store, "kind">;
  sandboxes: Pick<SandboxManager, "driverName">;
}

/** `/api/v1/info`: this gateway, and who the caller is. */
export function infoRoutes(d: InfoDeps, slots: StreamSlots): Hono<ApiEnv> {
  const r = new Hono<ApiEnv>();
  r.get("/info", readInfo(d, slots));
  return r;
}

function readInfo(d: InfoDeps, slots: StreamSlots) {
  return endpoint("info.read", {}, (c, { token }) =>
    c.json({
      version: "0.1.0",
      instanceId: d.instanceId,
      store: d.store.kind,
      sandboxDriver: d.sandboxes.driverName,
      publicUrl: d.publicUrl,
      // Who the caller is, for whom it acts, and its share of the stream caps.
      caller: {
        role: token.role,
        ...(token.role !== "admin" ? { namespace: namespaceOf(token) } : {}),
        ...(token.user !== undefined ? { user: token.user } : {}),
        ...(token.expiresAt !== undefined ? { expiresAt: token.expiresAt } : {}),
        streams: slots.count(streamHolder(c)),
        streamLimits: {
          perToken: d.config.gateway.max_streams_per_token,
          perAddress: d.config.gateway.max_streams_per_address,
        },
      },
    }),
  );
}
