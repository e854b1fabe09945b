/**
 * Socket Mode: apps.connections.open hands out single-use ws:// URLs served here;
 * events go out as envelopes that the app must acknowledge by envelope_id.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import { randomId } from "./inbound.ts";

export interface SocketEnvelope {
  type: "events_api" | "interactive" | "slash_commands";
  payload: unknown;
  retryAttempt?: number;
  retryReason?: string;
  acceptsResponsePayload?: boolean;
}

export interface SocketAck {
  acked: boolean;
  envelopeId: string;
  payload?: unknown;
}

export class SocketModeHub {
  readonly #wss = new WebSocketServer({ noServer: true });
  readonly #tickets = new Set<string>();
  readonly #sockets = new Set<WebSocket>();
  readonly #pending = new Map<string, (ack: SocketAck) => void>();
  readonly #appId: string;
  readonly #onChange: () => void;
  #baseWsUrl = "";
  #pinger?: NodeJS.Timeout;

  constructor(appId: string, onChange: () => void) {
    this.#appId = appId;
    this.#onChange = onChange;
  }

  attach(server: Server, baseUrl: string): void {
    this.#baseWsUrl = baseUrl.replace(/^http/, "ws");
    server.on("upgrade", (req, socket, head) => this.#upgrade(req, socket, head));
    // Slack pings from its side; the SDK drops connections that go quiet for 30 s.
    this.#pinger = setInterval(() => {
      for (const ws of this.#sockets) ws.ping();
    }, 10_000);
    this.#pinger.unref();
  }

  openUrl(): string {
    const ticket = randomUUID();
    this.#tickets.add(ticket);
    return `${this.#baseWsUrl}/link/?ticket=${ticket}&app_id=${this.#appId}`;
  }

  get connections(): number {
    return this.#sockets.size;
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? "/", "http://localhost");
    const ticket = url.searchParams.get("ticket") ?? "";
    if (url.pathname !== "/link/" || !this.#tickets.delete(ticket)) {
      socket.end("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      this.#sockets.add(ws);
      ws.on("message", (data) => this.#onMessage(data.toString()));
      ws.on("close", () => {
        this.#sockets.delete(ws);
        this.#onChange();
      });
      ws.send(
        JSON.stringify({
          type: "hello",
          num_connections: this.#sockets.size,
          debug_info: {
            host: "applink-emulator",
            build_number: 1,
            approximate_connection_time: 18_060,
          },
          connection_info: { app_id: this.#appId },
        }),
      );
      this.#onChange();
    });
  }

  #onMessage(text: string): void {
    let msg: { envelope_id?: unknown; payload?: unknown };
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof msg.envelope_id !== "string") return;
    const resolve = this.#pending.get(msg.envelope_id);
    if (!resolve) return;
    this.#pending.delete(msg.envelope_id);
    resolve({
      acked: true,
      envelopeId: msg.envelope_id,
      ...(msg.payload !== undefined ? { payload: msg.payload } : {}),
    });
  }

  /** Sends an envelope on the newest connection and waits for its ack. */
  send(envelope: SocketEnvelope, timeoutMs: number): Promise<SocketAck> {
    const socket = [...this.#sockets].at(-1);
    if (!socket) {
      throw new Error("No Socket Mode connection: start the app's SocketModeClient first");
    }
    const envelopeId = randomUUID();
    const message = {
      envelope_id: envelopeId,
      payload: envelope.payload,
      type: envelope.type,
      accepts_response_payload: envelope.acceptsResponsePayload ?? false,
      ...(envelope.type === "events_api"
        ? {
            retry_attempt: envelope.retryAttempt ?? 0,
            retry_reason: envelope.retryReason ?? "",
          }
        : {}),
    };
    return new Promise<SocketAck>((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(envelopeId);
        resolve({ acked: false, envelopeId });
      }, timeoutMs);
      this.#pending.set(envelopeId, (ack) => {
        clearTimeout(timer);
        resolve(ack);
      });
      socket.send(JSON.stringify(message));
    });
  }

  /** Asks clients to reconnect, as Slack does when it recycles a connection. */
  disconnect(
    reason: "warning" | "refresh_requested" | "link_disabled" = "refresh_requested",
  ): void {
    for (const ws of this.#sockets) {
      ws.send(
        JSON.stringify({
          type: "disconnect",
          reason,
          debug_info: { host: `applink-${randomId(6)}` },
        }),
      );
      ws.close(1000);
    }
  }

  close(): void {
    if (this.#pinger) clearInterval(this.#pinger);
    for (const ws of this.#sockets) ws.terminate();
    this.#sockets.clear();
    this.#wss.close();
  }
}
