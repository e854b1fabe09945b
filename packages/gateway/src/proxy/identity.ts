import type { IncomingHttpHeaders } from "node:http";
import type { EgressIdentity } from "../sandbox/driver.ts";
import { parseBasic } from "./headers.ts";
import { type Refused, refused } from "./refusals.ts";

/**
 * Which sandbox a request speaks for. A per-sandbox socket is that sandbox,
 * whatever the request says. A pool's shared socket needs the name in
 * `x-lobu-sandbox` (plain requests) or `Proxy-Authorization: Basic` (CONNECT,
 * where clients send no custom headers), and the sandbox must be placed on that
 * pool.
 */

export interface SandboxIdentification {
  identity: EgressIdentity;
  /**
   * For pool identities: whether `sandboxId` is placed on this pool. A pool
   * process may only speak for its own sandboxes, so a compromised pool cannot
   * borrow another pool's tenants.
   */
  poolMember?(poolId: string, sandboxId: string): boolean;
}

export type Identified = { ok: true; sandboxId: string } | Refused;

const SANDBOX_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

/** The user part of Basic credentials. */
function basicUser(header: string | undefined): string | undefined {
  const basic = parseBasic(header);
  if (!basic) return undefined;
  const colon = basic.decoded.indexOf(":");
  return colon < 0 ? basic.decoded : basic.decoded.slice(0, colon);
}

export function identifySandbox(
  who: SandboxIdentification,
  headers: IncomingHttpHeaders,
  connect: boolean,
): Identified {
  const { identity } = who;
  if (identity.kind === "sandbox") return { ok: true, sandboxId: identity.sandboxId };
  const header = headers["x-lobu-sandbox"];
  const named =
    (typeof header === "string" ? header : undefined) ?? basicUser(headers["proxy-authorization"]);
  if (named && SANDBOX_ID.test(named)) {
    if (who.poolMember && !who.poolMember(identity.poolId, named)) {
      return refusedIdentity(403, `sandbox ${named} is not placed on pool ${identity.poolId}`);
    }
    return { ok: true, sandboxId: named };
  }
  const how = connect
    ? "Proxy-Authorization: Basic base64(<sandboxId>:)"
    : "the x-lobu-sandbox header";
  return refusedIdentity(
    407,
    `this egress socket is shared by pool ${identity.poolId}; name the sandbox with ${how}`,
  );
}

function refusedIdentity(status: 403 | 407, reason: string): Refused {
  return refused({ status, kind: "identity", host: "", reason });
}
