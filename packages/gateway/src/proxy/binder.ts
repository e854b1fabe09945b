import { chmod, chown, mkdir, mkdtemp, rm } from "node:fs/promises";
import type { Server } from "node:http";
import { join } from "node:path";
import { digest } from "@lobu/core";
import { ignoreGone } from "@lobu/core/best-effort";
import type { EgressBinder, EgressBinding, EgressIdentity } from "../sandbox/driver.ts";

/**
 * Opens one egress endpoint per sandbox (or pool) on a Unix socket:
 * `<runDir>/e-<id digest>-XXXXXX/egress.sock`, in a fresh directory per binding.
 *
 * Permissions: by default the directory is 0700 and the socket 0600, i.e. only
 * the gateway's uid can connect. That is what rootless sandboxes need: a user
 * namespace maps the sandbox's processes to the gateway's uid on the host, and
 * the driver bind-mounts the socket into the sandbox. A driver that runs
 * sandboxes under a different uid passes `gid` (a group that uid is in) and the
 * directory becomes 0710 and the socket 0660 for that group, never world-open:
 * whoever can connect to the socket acts as that sandbox.
 */

/** Linux sun_path is 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107;
export const EGRESS_SOCKET_NAME = "egress.sock";

export interface EgressBinderOptions {
  /** Parent directory for the per-binding directories (created 0700 if missing). */
  runDir: string;
  /** A server for one identity, e.g. `(identity) => createEgressServer({ ...shared, identity })`. */
  createServer(identity: EgressIdentity): Server;
  /** Group allowed to connect (for sandboxes running under another uid). */
  gid?: number;
}

function label(identity: EgressIdentity): string {
  return identity.kind === "sandbox" ? `s${identity.sandboxId}` : `p${identity.poolId}`;
}

async function closeServer(server: Server): Promise<void> {
  const s = server as Server & { shutdown?: () => Promise<void> };
  if (typeof s.shutdown === "function") return s.shutdown();
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export function createEgressBinder(opts: EgressBinderOptions): EgressBinder {
  return {
    async bind(identity: EgressIdentity): Promise<EgressBinding> {
      await mkdir(opts.runDir, { recursive: true, mode: 0o700 });
      const dir = await mkdtemp(join(opts.runDir, `e-${digest(label(identity), 10)}-`));
      const socketPath = join(dir, EGRESS_SOCKET_NAME);
      if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
        await rm(dir, { recursive: true, force: true });
        throw new Error(
          `egress socket path ${socketPath} is longer than ${MAX_SOCKET_PATH} bytes, the limit for Unix sockets; use a shorter run directory`,
        );
      }
      const shared = opts.gid !== undefined;
      await chmod(dir, shared ? 0o710 : 0o700);
      if (shared) await chown(dir, process.getuid?.() ?? -1, opts.gid!);

      const server = opts.createServer(identity);
      try {
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen(socketPath, () => {
            server.off("error", reject);
            resolve();
          });
        });
        await chmod(socketPath, shared ? 0o660 : 0o600);
        if (shared) await chown(socketPath, process.getuid?.() ?? -1, opts.gid!);
      } catch (err) {
        await closeServer(server).catch(ignoreGone); // never listened: nothing to close
        await rm(dir, { recursive: true, force: true });
        throw err;
      }

      let closing: Promise<void> | undefined;
      return {
        socketPath,
        close() {
          closing ??= (async () => {
            await closeServer(server);
            // server.close() unlinks the socket; rm covers a crash in between.
            await rm(dir, { recursive: true, force: true });
          })();
          return closing;
        },
      };
    },
  };
}
