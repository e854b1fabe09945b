/**
 * The Discord Gateway over WebSocket, as @discordjs/ws speaks it: HELLO with
 * a heartbeat interval, IDENTIFY (token and intents checked) answered with
 * READY and a GUILD_CREATE per guild, heartbeats acknowledged, RESUME
 * replaying what the session missed, and dispatches with sequence numbers.
 * JSON encoding, no transport compression (the library's default).
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";

export const GATEWAY_PATH = "/gateway";

const Op = {
  Dispatch: 0,
  Heartbeat: 1,
  Identify: 2,
  Resume: 6,
  Reconnect: 7,
  InvalidSession: 9,
  Hello: 10,
  HeartbeatAck: 11,
} as const;

const Close = { AuthenticationFailed: 4004, NotAuthenticated: 4003, DecodeError: 4002 } as const;

interface Session {
  id: string;
  /** The token it identified with: which bot (application) it is. */
  token: string;
  seq: number;
  intents: number;
  socket: WebSocket | undefined;
  /** Dispatches sent, for RESUME. */
  sent: { s: number; t: string; d: unknown }[];
}

export interface GatewayHooks {
  /** Whether `token` is a bot's (one emulator may host several). */
  knows(token: string): boolean;
  /** READY's data for the bot of `token` (user, application, guilds as unavailable). */
  ready(sessionId: string, resumeUrl: string, token: string): Record<string, unknown>;
  /** GUILD_CREATE payloads sent after READY. */
  guilds(): Record<string, unknown>[];
  onChange(): void;
}

export class DiscordGateway {
  readonly #wss = new WebSocketServer({ noServer: true });
  readonly #sessions = new Map<string, Session>();
  readonly #hooks: GatewayHooks;
  /** IDENTIFY payloads received, in order (tests check intents). */
  readonly identifies: { intents: number; shard?: unknown }[] = [];
  heartbeats = 0;
  #url = "";

  constructor(hooks: GatewayHooks) {
    this.#hooks = hooks;
  }

  attach(server: Server, baseUrl: string): void {
    this.#url = `${baseUrl.replace(/^http/, "ws")}${GATEWAY_PATH}`;
    server.on("upgrade", (req, socket, head) => this.#upgrade(req, socket, head));
  }

  get url(): string {
    return this.#url;
  }

  /** Sessions with an open, identified connection. */
  get connected(): number {
    return [...this.#sessions.values()].filter((s) => s.socket).length;
  }

  /**
   * Send a dispatch to every identified session whose intents include
   * `intent` (0: always), of the bot with token `to` when given.
   */
  dispatch(t: string, d: unknown, intent = 0, to?: string): void {
    for (const session of this.#sessions.values()) {
      if (intent && (session.intents & intent) === 0) continue;
      if (to !== undefined && session.token !== to) continue;
      session.seq++;
      const payload = { op: Op.Dispatch, s: session.seq, t, d };
      session.sent.push({ s: session.seq, t, d });
      session.socket?.send(JSON.stringify(payload));
    }
  }

  /** Drop every connection as a network failure would (the library resumes). */
  dropConnections(): void {
    for (const session of this.#sessions.values()) {
      session.socket?.terminate();
      session.socket = undefined;
    }
  }

  close(): void {
    for (const client of this.#wss.clients) client.terminate();
    this.#wss.close();
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? "/", "http://emulator");
    if (url.pathname !== GATEWAY_PATH) {
      socket.destroy();
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#connected(ws, url));
  }

  #connected(ws: WebSocket, url: URL): void {
    if (url.searchParams.get("encoding") !== "json" || url.searchParams.has("compress")) {
      ws.close(Close.DecodeError, "only encoding=json without compression is emulated");
      return;
    }
    let session: Session | undefined;
    ws.send(JSON.stringify({ op: Op.Hello, d: { heartbeat_interval: 41_250 }, s: null, t: null }));
    ws.on("message", (raw) => {
      let msg: { op?: number; d?: Record<string, unknown> | number | null };
      try {
        msg = JSON.parse(raw.toString());
      } catch {
        ws.close(Close.DecodeError, "Error while decoding payload.");
        return;
      }
      switch (msg.op) {
        case Op.Heartbeat:
          this.heartbeats++;
          ws.send(JSON.stringify({ op: Op.HeartbeatAck, d: null, s: null, t: null }));
          return;
        case Op.Identify: {
          const d = (msg.d ?? {}) as { token?: string; intents?: number; shard?: unknown };
          if (!d.token || !this.#hooks.knows(d.token)) {
            ws.close(Close.AuthenticationFailed, "Authentication failed.");
            return;
          }
          this.identifies.push({ intents: d.intents ?? 0, shard: d.shard });
          session = {
            id: randomUUID(),
            token: d.token,
            seq: 0,
            intents: d.intents ?? 0,
            socket: ws,
            sent: [],
          };
          this.#sessions.set(session.id, session);
          this.#readyOn(session);
          return;
        }
        case Op.Resume: {
          const d = (msg.d ?? {}) as { token?: string; session_id?: string; seq?: number };
          const known = d.session_id ? this.#sessions.get(d.session_id) : undefined;
          if (!known || d.token !== known.token) {
            ws.send(JSON.stringify({ op: Op.InvalidSession, d: false, s: null, t: null }));
            return;
          }
          session = known;
          session.socket = ws;
          for (const missed of session.sent.filter((m) => m.s > (d.seq ?? 0)))
            ws.send(JSON.stringify({ op: Op.Dispatch, ...missed }));
          session.seq++;
          session.sent.push({ s: session.seq, t: "RESUMED", d: {} });
          ws.send(JSON.stringify({ op: Op.Dispatch, s: session.seq, t: "RESUMED", d: {} }));
          this.#hooks.onChange();
          return;
        }
        default:
          if (!session) ws.close(Close.NotAuthenticated, "Not authenticated.");
      }
    });
    ws.on("close", () => {
      if (session?.socket === ws) session.socket = undefined;
      this.#hooks.onChange();
    });
  }

  #readyOn(session: Session): void {
    const send = (t: string, d: unknown) => {
      session.seq++;
      session.sent.push({ s: session.seq, t, d });
      session.socket?.send(JSON.stringify({ op: Op.Dispatch, s: session.seq, t, d }));
    };
    send("READY", this.#hooks.ready(session.id, this.#url, session.token));
    for (const guild of this.#hooks.guilds()) send("GUILD_CREATE", guild);
    this.#hooks.onChange();
  }
}
