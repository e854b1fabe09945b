import { connect, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { parseConfig, parseGatewayAddress, parseWorkerPreamble, workerPreamble } from "@lobu/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WorkerEndpoint } from "../../src/sandbox/worker-endpoint.ts";
import { scratch, testLogger } from "./helpers.ts";

/**
 * The worker endpoint is the boundary a container or pod crosses to reach the
 * gateway: everything here is a hostile client trying to get past it.
 */

/** Connect, send `bytes` (then end unless `keepOpen`), and collect the answer until closed. */
function exchange(port: number, bytes: string | Buffer, keepOpen = false): Promise<string> {
  return new Promise((resolve) => {
    let got = "";
    const s = connect({ host: "127.0.0.1", port }, () =>
      keepOpen ? s.write(bytes) : s.end(bytes),
    );
    s.on("data", (d) => {
      got += d.toString();
    });
    s.on("close", () => resolve(got));
    s.on("error", () => {});
  });
}

describe("worker transport", () => {
  it("parses first lines and gateway addresses strictly", () => {
    const token = "t".repeat(43);
    expect(parseWorkerPreamble(workerPreamble("control", token).trimEnd())).toEqual({
      kind: "control",
      token,
    });
    for (const bad of [
      "",
      `lobu-worker control ${"t".repeat(31)}`,
      `lobu-worker control ${"t".repeat(129)}`,
      `lobu-worker admin ${token}`,
      `lobu-worker control ${token} extra`,
      `lobu-worker control ${token.slice(1)}/`,
      ` lobu-worker control ${token}`,
    ])
      expect(parseWorkerPreamble(bad), bad).toBeUndefined();
    expect(parseGatewayAddress("/run/lobu/control.sock")).toEqual({
      path: "/run/lobu/control.sock",
    });
    expect(parseGatewayAddress("tcp://10.0.0.7:8090")).toEqual({ host: "10.0.0.7", port: 8090 });
    expect(parseGatewayAddress("tcp://[fd00::1]:8090")).toEqual({ host: "fd00::1", port: 8090 });
    for (const bad of [
      "relative.sock",
      "tcp://host",
      "tcp://host:0",
      "tcp://host:70000",
      "http://h:1",
    ])
      expect(() => parseGatewayAddress(bad), bad).toThrow(/socket path or tcp/);
  });

  it("refuses bad sandbox settings in lobu.toml with a clear error", () => {
    expect(() => parseConfig('[sandbox.docker]\nruntime = "runsc --debug"\n')).toThrow(
      /sandbox\.docker\.runtime.*runtime name/s,
    );
    expect(() => parseConfig('[sandbox.kubernetes]\ngateway_address = "http://gw:80"\n')).toThrow(
      /gateway_address.*tcp:\/\/host:port/s,
    );
    expect(() => parseConfig('[sandbox.kubernetes]\nnamespace = "Lobu_Sandboxes"\n')).toThrow(
      /namespace/,
    );
    const ok = parseConfig(
      '[sandbox]\ndriver = "docker"\n[sandbox.docker]\nruntime = "runsc"\nimage = "lobu-sandbox:1"\n',
    );
    expect(ok.sandbox.docker).toMatchObject({ runtime: "runsc", image: "lobu-sandbox:1" });
    expect(ok.sandbox.kubernetes.runtime_class).toBe("gvisor");
  });
});

describe("WorkerEndpoint", () => {
  const { dir, cleanup } = scratch();
  let endpoint: WorkerEndpoint;
  let egressServer: Server;
  const egressPath = join(dir, "egress.sock");
  const controls: Socket[] = [];

  beforeAll(async () => {
    egressServer = createServer({ allowHalfOpen: true }, (c) => {
      let got = "";
      c.on("data", (d) => {
        got += d.toString();
      });
      c.on("end", () => c.end(`egress saw: ${got}`));
    });
    await new Promise<void>((r) => egressServer.listen(egressPath, r));
    endpoint = await WorkerEndpoint.listen({ host: "127.0.0.1", port: 0 }, testLogger());
  });

  afterAll(async () => {
    for (const c of controls) c.destroy();
    await endpoint.close();
    egressServer.close();
    cleanup();
  });

  it("pipes an egress connection with its token to that sandbox's socket, bytes after the first line included", async () => {
    const { token } = endpoint.admit("s1", { onControl: () => {}, egressSocketPath: egressPath });
    expect(await exchange(endpoint.port, `lobu-worker egress ${token}\nCONNECT x:443`)).toBe(
      "egress saw: CONNECT x:443",
    );
  });

  it("hands over the control channel once, with nothing lost that came with the first line", async () => {
    let handed!: (s: Socket) => void;
    const got = new Promise<Socket>((r) => {
      handed = r;
    });
    const { token } = endpoint.admit("s2", { onControl: (s) => handed(s) });
    const client = connect({ host: "127.0.0.1", port: endpoint.port });
    controls.push(client);
    client.write(`lobu-worker control ${token}\n{"t":"ready"}\n`);
    const socket = await got;
    controls.push(socket);
    const first = await new Promise<string>((r) => {
      socket.once("data", (d) => r(d.toString()));
      socket.resume();
    });
    expect(first).toBe('{"t":"ready"}\n');
    // The same token opens no second control channel, and no egress without a socket.
    expect(await exchange(endpoint.port, `lobu-worker control ${token}\n`)).toBe("");
    expect(await exchange(endpoint.port, `lobu-worker egress ${token}\nGET /`)).toBe("");
  });

  it("closes unanswered: unknown or revoked tokens, garbage, overlong first lines", async () => {
    const before = endpoint.rejected;
    const { token, revoke } = endpoint.admit("s3", {
      onControl: () => {},
      egressSocketPath: egressPath,
    });
    revoke();
    for (const attempt of [
      `lobu-worker egress ${token}\nGET /`,
      `lobu-worker egress ${"a".repeat(43)}\nGET /`,
      "GET / HTTP/1.1\r\nHost: gateway\r\n\r\n",
      Buffer.alloc(4096, 0x41),
      "\n",
    ])
      expect(await exchange(endpoint.port, attempt, true)).toBe("");
    expect(endpoint.rejected - before).toBe(5);
  });
});
