import { createServer, type Server } from "node:net";
import { dialGateway } from "./gateway-link.ts";

/**
 * Exposes the gateway's egress Unix socket (or, in a pod, its worker endpoint
 * over TCP with the sandbox's token) as a TCP port on the sandbox's own
 * loopback, so ordinary tools (curl, git, pip, the provider SDKs) can use it as
 * their HTTP proxy. Bytes are piped untouched: all policy lives in the gateway.
 */
export async function startForwarder(
  socketPath: string,
  token?: string,
): Promise<{ url: string; port: number; server: Server }> {
  const server = createServer((client) => {
    const upstream = dialGateway(socketPath, "egress", token);
    client.pipe(upstream).pipe(client);
    const done = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", done);
    upstream.on("error", done);
    client.on("close", done);
    upstream.on("close", done);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  server.unref();
  return { url: `http://127.0.0.1:${port}`, port, server };
}
