#!/usr/bin/env node
/**
 * Lobu worker: hosts the pi agent runtime for one sandbox (`single`) or many
 * virtual sandboxes (`pool`). It talks to the gateway over fd 3 and reaches the
 * outside world only through the gateway's egress socket.
 */
import { join } from "node:path";
import { PROTOCOL_VERSION, workerProxyEnv } from "@lobu/core";
import { openControlChannel } from "./control.ts";
import { startForwarder } from "./forwarder.ts";
import { SessionHost } from "./host.ts";
import { realWorkspace } from "./workspace.ts";

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    process.stderr.write(
      `lobu-worker: ${name} is not set (the gateway sets it when it starts a worker)\n`,
    );
    process.exit(2);
  }
  return value;
}

process.env.PI_OFFLINE = "1";
const mode = process.env.LOBU_WORKER_MODE === "pool" ? "pool" : "single";
const egressSocket = required("LOBU_EGRESS_SOCKET");
const forwarder = await startForwarder(egressSocket, Number(process.env.LOBU_PROXY_PORT ?? 0));
// The agent's shell reaches the network only through the gateway; the CA bundle
// (system CAs + the installation CA) lets it trust the gateway's TLS interception.
const baseEnv = workerProxyEnv({
  proxyUrl: forwarder.url,
  caBundlePath: process.env.LOBU_CA_BUNDLE ?? "/etc/ssl/certs/ca-certificates.crt",
});

const control = openControlChannel(3);
const host = new SessionHost({
  mode,
  sandboxId: process.env.LOBU_SANDBOX_ID,
  volumeOf: (sandboxId) =>
    mode === "single" ? required("LOBU_VOLUME") : join(required("LOBU_VOLUMES_ROOT"), sandboxId),
  workspaceFor: (_sandboxId, volumeDir) => realWorkspace(volumeDir),
  gatewayUrl: forwarder.url,
  baseEnv,
  send: (msg) => control.send(msg),
});

control.onMessage((msg) => host.handle(msg));
control.onClose(() => {
  host.shutdown();
  process.exit(0);
});
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    host.shutdown();
    process.exit(0);
  });
}
control.send({ t: "ready", protocol: PROTOCOL_VERSION, pid: process.pid, mode });
