#!/usr/bin/env node
/**
 * Lobu worker: hosts the pi agent runtime for one sandbox (`single`) or many
 * virtual sandboxes (`pool`). It talks to the gateway over fd 3 and reaches the
 * outside world only through the gateway's egress socket.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PROTOCOL_VERSION, workerProxyEnv } from "@lobu/core";
import { openControlChannel } from "./control.ts";
import { startForwarder } from "./forwarder.ts";
import { SessionHost } from "./host.ts";
import { realWorkspace, type Workspace } from "./workspace.ts";

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

const positive = (name: string, fallback: number): number => {
  const n = Number(process.env[name]);
  return Number.isFinite(n) && n > 0 ? n : fallback;
};

/** A count where 0 means none: unset or not a whole number, `fallback`. */
const count = (name: string, fallback: number): number => {
  const n = Number(process.env[name] || Number.NaN);
  return Number.isInteger(n) && n >= 0 ? n : fallback;
};

/** What a session's pi state takes when held (runtime, tools, transcript in memory). */
const HELD_STATE_KB = 160;

process.env.PI_OFFLINE = "1";
const mode = process.env.LOBU_WORKER_MODE === "pool" ? "pool" : "single";
const egressSocket = required("LOBU_EGRESS_SOCKET");
const caBundlePath = process.env.LOBU_CA_BUNDLE ?? "/etc/ssl/certs/ca-certificates.crt";

let gatewayUrl: string;
let baseEnv: Record<string, string>;
let volumeOf: (sandboxId: string) => string;
let workspaceFor: (sandboxId: string, volumeDir: string) => Workspace;
let closePool = () => {};
let pooledCommands: import("./pooled-tools.ts").PooledCommands | undefined;

if (mode === "pool") {
  // Virtual sandboxes: agents run in the just-bash virtual shell, never as host
  // processes, and every network request names its sandbox (see pool-egress.ts).
  // (Loaded only here: single-mode workers start faster without them.)
  const { createEgressFetch, POOL_GATEWAY_URL, routeFetchThroughEgress } = await import(
    "./pool-egress.ts"
  );
  const { startPoolGuards } = await import("./virtual/pool-guards.ts");
  const { virtualWorkspace } = await import("./virtual-workspace.ts");
  const volumesRoot = required("LOBU_VOLUMES_ROOT");
  // Every sandbox's skills folder is `<root>/<sandbox id>` (the gateway fills it).
  const skillsRoot = process.env.LOBU_SKILLS_ROOT;
  routeFetchThroughEgress(egressSocket);
  let ca: Buffer | undefined;
  try {
    ca = readFileSync(caBundlePath);
  } catch {
    ca = undefined; // Node's own CA store then
  }
  // The pooled process tier: bash runs in a per-conversation sandbox the gateway starts.
  if (process.env.LOBU_POOL_COMMANDS === "sandbox") {
    const { PooledCommands } = await import("./pooled-tools.ts");
    pooledCommands = new PooledCommands((msg) => control.send(msg));
  }
  const diskMb = positive("LOBU_DISK_MB", 256);
  // Fair shell threads, the crash journal and the stall watchdog (see pool-guards.ts).
  const guards = startPoolGuards(process.env, volumesRoot);
  closePool = () => guards.close();
  gatewayUrl = POOL_GATEWAY_URL;
  baseEnv = {};
  volumeOf = (sandboxId) => join(volumesRoot, sandboxId);
  workspaceFor = (sandboxId, volumeDir) =>
    virtualWorkspace({
      volumeDir,
      fetch: createEgressFetch({ socketPath: egressSocket, sandboxId, ca }),
      limits: {
        maxTotalBytes: diskMb * 1024 * 1024,
        maxFileBytes: Math.min(10, diskMb) * 1024 * 1024,
      },
      shellPool: guards.shellPool,
      onCall: guards.onCall(sandboxId),
      ...(skillsRoot ? { skillsDir: join(skillsRoot, sandboxId) } : {}),
      ...(pooledCommands ? { runCommand: pooledCommands.runnerFor(sandboxId) } : {}),
    });
} else {
  // Over TCP (a pod) every egress connection opens with the sandbox's token; a
  // Unix socket is the sandbox's own and needs none.
  const forwarder = await startForwarder(
    egressSocket,
    egressSocket.startsWith("tcp://") ? process.env.LOBU_WORKER_TOKEN : undefined,
  );
  // The agent's shell reaches the network only through the gateway; the CA bundle
  // (system CAs + the installation CA) lets it trust the gateway's TLS interception.
  gatewayUrl = forwarder.url;
  baseEnv = workerProxyEnv({ proxyUrl: forwarder.url, caBundlePath });
  volumeOf = () => required("LOBU_VOLUME");
  workspaceFor = (_sandboxId, volumeDir) =>
    realWorkspace(volumeDir, process.env.LOBU_SKILLS_DIR || undefined);
}

const control = openControlChannel(3);
const host = new SessionHost({
  mode,
  sandboxId: process.env.LOBU_SANDBOX_ID,
  volumeOf,
  workspaceFor,
  gatewayUrl,
  baseEnv,
  idleUnloadMs: positive("LOBU_SESSION_IDLE_MS", 30 * 60_000),
  // Rebuilding pi's state costs a few ms of CPU on the next turn; holding it, ~160 KB per
  // session: the most recently active keep it, up to a tenth of the pool's memory limit.
  releaseIdleMs: positive("LOBU_SESSION_RELEASE_MS", 10_000),
  heldStates: count(
    "LOBU_SESSION_HELD",
    Math.floor((positive("LOBU_POOL_MEMORY_MB", 2048) * 1024 * 0.1) / HELD_STATE_KB),
  ),
  holdMaxMs: positive("LOBU_SESSION_HOLD_MAX_MS", 60_000),
  send: (msg) => control.send(msg),
});

control.onMessage((msg) => {
  if (msg.t === "tool_exec_result") pooledCommands?.result(msg);
  else host.handle(msg);
});
control.onClose(() => {
  host.shutdown();
  closePool();
  process.exit(0);
});
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    host.shutdown();
    closePool();
    process.exit(0);
  });
}
control.send({ t: "ready", protocol: PROTOCOL_VERSION, pid: process.pid, mode });
