/**
 * The worker of the probe's trial sandbox (see probe.ts): it refuses to start
 * when it can see any network interface but loopback, then says `ready` on its
 * control channel (fd 3) and exits 0 at the first message or when the channel
 * closes.
 *
 * Node built-ins only: the trial sandbox may show this file and nothing else of
 * the repository. (The type import is erased before it runs.)
 */
import { Socket } from "node:net";
import { networkInterfaces } from "node:os";
import type { PROTOCOL_VERSION, WorkerToGateway } from "@lobu/core";

const interfaces = Object.keys(networkInterfaces());
if (interfaces.some((name) => name !== "lo")) {
  console.error(`network interfaces visible: ${interfaces}`);
  process.exit(3);
}
// The launcher refuses another version: a protocol bump fails the type check here.
const protocol: typeof PROTOCOL_VERSION = 1;
const ready: WorkerToGateway = { t: "ready", protocol, pid: process.pid, mode: "single" };
const channel = new Socket({ fd: 3 });
channel.write(`${JSON.stringify(ready)}\n`);
channel.on("data", () => process.exit(0));
channel.on("end", () => process.exit(0));
