import { spawn } from "node:child_process";
import { constants as osConstants } from "node:os";
// Light modules only (not the package index): this starts before every pooled command.
import { workerProxyEnv } from "@lobu/core/proxy-env";
import { startForwarder } from "./forwarder.ts";

/**
 * Entry run first in a pooled command sandbox (`node command-proxy.ts <program>
 * [args…]`): the same forwarder an own-mode worker runs, on this sandbox's own
 * loopback, exposing its conversation's egress socket; then the program with
 * the same proxy and CA variables, so curl, git, pip and requests reach allowed
 * hosts as they do in own mode. Its exit code (or signal) is this process's, and
 * the forwarder goes with it: nothing listens once the command has ended.
 */
const [program, ...args] = process.argv.slice(2);
const socketPath = process.env.LOBU_EGRESS_SOCKET;
if (!program || !socketPath) {
  process.stderr.write("lobu: command-proxy needs a program and LOBU_EGRESS_SOCKET\n");
  process.exit(127);
}

const forwarder = await startForwarder(socketPath);
const child = spawn(program, args, {
  stdio: "inherit",
  env: {
    ...process.env,
    ...workerProxyEnv({
      proxyUrl: forwarder.url,
      caBundlePath: process.env.LOBU_CA_BUNDLE ?? "/etc/ssl/certs/ca-certificates.crt",
    }),
  },
});
// A signal sent to this process (not to the whole group) reaches the command too.
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const)
  process.on(signal, () => child.kill(signal));
child.on("error", (err) => {
  process.stderr.write(`lobu: ${program}: ${err.message}\n`);
  process.exit(127);
});
child.on("exit", (code, signal) => {
  forwarder.server.close();
  if (signal) {
    // Ended by a signal: end the same way, so the caller sees 128+N like from a shell.
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
    process.exitCode = 128 + (osConstants.signals[signal] ?? 0);
  } else process.exit(code ?? 1);
});
