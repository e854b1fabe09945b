import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { EgressAuditRecord } from "../../src/proxy/audit.ts";
import type { RecordAudit } from "../../src/proxy/audit-records.ts";
import type { Refusal } from "../../src/proxy/explain.ts";
import { refuse, writeRefusal } from "../../src/proxy/refusals.ts";

/**
 * The one refusal helper, on a real HTTP server: the same status line, headers,
 * body and audit record whether the refusal goes out on a response or, for
 * CONNECT, on the raw socket.
 */

const denied: Refusal = {
  status: 403,
  kind: "not_allowed",
  host: "evil.test",
  reason: "evil.test is not in the agent's network allow list",
  agentId: "helper",
};

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function serve(server: http.Server): Promise<number> {
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

function recorder(): { records: Omit<EgressAuditRecord, "at">[]; audit: RecordAudit } {
  const records: Omit<EgressAuditRecord, "at">[] = [];
  return { records, audit: (r) => records.push(r) };
}

/** Send raw bytes, read until the server closes. */
async function exchange(port: number, text: string): Promise<string> {
  const socket = net.connect(port, "127.0.0.1");
  socket.write(text);
  const chunks: Buffer[] = [];
  socket.on("data", (c: Buffer) => chunks.push(c));
  await once(socket, "close");
  return Buffer.concat(chunks).toString("utf8");
}

describe("refuse", () => {
  it("answers a request with the status, the reason in the status line and headers, and audits it", async () => {
    const { records, audit } = recorder();
    const port = await serve(
      http.createServer((req, res) =>
        refuse(audit, req, res, denied, { sandboxId: "sb", port: 80 }),
      ),
    );
    const res = await fetch(`http://127.0.0.1:${port}/x`);
    expect(res.status).toBe(403);
    expect(res.statusText).toMatch(
      /^Forbidden - Lobu egress proxy refused the request to evil\.test/,
    );
    expect(res.headers.get("x-lobu-egress")).toBe("egress_not_allowed");
    expect(res.headers.get("x-lobu-egress-reason")).toContain(
      "is not in the agent's network allow list",
    );
    expect(res.headers.get("proxy-authenticate")).toBeNull();
    expect(await res.text()).toContain("ask the user to allow evil.test");
    expect(records).toEqual([
      {
        sandboxId: "sb",
        agentId: "helper",
        method: "GET",
        host: "evil.test",
        port: 80,
        decision: "denied",
        reason: denied.reason,
        status: 403,
      },
    ]);
  });

  it("answers in JSON when the client asks for it", async () => {
    const { audit } = recorder();
    const port = await serve(
      http.createServer((req, res) =>
        refuse(audit, req, res, denied, { sandboxId: "sb", port: 80 }),
      ),
    );
    const res = await fetch(`http://127.0.0.1:${port}/`, {
      headers: { accept: "application/json" },
    });
    expect(await res.json()).toMatchObject({
      error: { code: "egress_not_allowed", host: "evil.test", reason: denied.reason },
    });
  });

  it("refuses a CONNECT on its raw socket the same way, asking a pool's client for its name on 407", async () => {
    const { records, audit } = recorder();
    const who: Refusal = { status: 407, kind: "identity", host: "", reason: "name the sandbox" };
    const server = http.createServer();
    server.on("connect", (req, socket: net.Socket) =>
      refuse(audit, req, socket, who, { sandboxId: null, port: 0 }),
    );
    const port = await serve(server);
    const text = await exchange(
      port,
      "CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n",
    );
    expect(text).toMatch(/^HTTP\/1\.1 407 Proxy Authentication Required - /);
    expect(text).toContain('Proxy-Authenticate: Basic realm="lobu"');
    expect(text).toContain("X-Lobu-Egress: egress_unknown_sandbox");
    expect(text).toContain("Connection: close");
    expect(records).toEqual([
      {
        sandboxId: null,
        method: "CONNECT",
        host: "",
        port: 0,
        decision: "denied",
        reason: "name the sandbox",
        status: 407,
      },
    ]);
  });
});

describe("writeRefusal", () => {
  it("cuts a response whose head is already out instead of writing a second one", async () => {
    const port = await serve(
      http.createServer((_req, res) => {
        res.writeHead(200, { "content-type": "text/plain" });
        // Once the head and some body are on the wire, a refusal can only cut the answer.
        res.write("partial", () => writeRefusal(res, denied, false));
      }),
    );
    const text = await exchange(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(text).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(text).toContain("partial");
    expect(text).not.toContain("403");
  });

  it("destroys a socket it can no longer write to", () => {
    const socket = new net.Socket();
    socket.destroy();
    writeRefusal(socket, denied, false);
    expect(socket.destroyed).toBe(true);
  });
});
