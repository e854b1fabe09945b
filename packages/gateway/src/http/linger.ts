import type { IncomingMessage, Server } from "node:http";
import { Socket } from "node:net";

/** How long a client whose body went unread may go on sending (discarded) after its answer. */
const LINGER_MS = 5_000;
/** And how much of it, at most. */
const LINGER_BYTES = 64 * 1024 * 1024;

interface LingerLimits {
  ms: number;
  bytes: number;
}

/** Node's own "close once everything is written", for a socket with nothing left to read. */
const closeWhenWritten = Socket.prototype.destroySoon;

/**
 * Lingering close (RFC 9112 §9.6, as nginx does it): when an answer is sent
 * before the request body was read to its end (a 401, a 413, a refused
 * signature or host), the rest of the body is read and discarded, never held,
 * for a bounded time and size. Closing at once would reset the connection under
 * a client still sending, and on a loaded client the reset can overtake the
 * answer it has not read yet: it would never see why it was refused.
 *
 * Two cases. On a connection that stays open, the rest of the body is drained
 * (the request listener). On one that must close after the answer (the client
 * sent `Connection: close`, HTTP/1.0), Node ends it with `destroySoon()`, which
 * would close the socket with the body still arriving: that is replaced by a
 * half close — our side ends, reading goes on until the client ends its side or
 * the budget runs out.
 */
export function lingerAfterAnswer(server: Server, limits: LingerLimits = defaultLimits()): void {
  /** Each connection's latest request: a close after a complete one needs no lingering. */
  const latest = new WeakMap<Socket, IncomingMessage>();
  server.on("connection", (socket: Socket) => {
    socket.destroySoon = () => {
      if (latest.get(socket)?.complete === false) halfClose(socket, limits);
      else closeWhenWritten.call(socket);
    };
  });
  server.on("request", (req: IncomingMessage, res) => {
    latest.set(req.socket, req);
    res.once("finish", () => {
      if (!req.readableEnded && !req.destroyed) discardRest(req, limits);
    });
  });
}

function defaultLimits(): LingerLimits {
  return { ms: LINGER_MS, bytes: LINGER_BYTES };
}

function halfClose(socket: Socket, limits: LingerLimits): void {
  if (socket.readableEnded || socket.destroyed) return void closeWhenWritten.call(socket);
  if (socket.writable) socket.end();
  const stop = watch(socket, limits);
  // The client has said all it will: the answer has reached it, close now.
  socket.once("end", () => {
    stop();
    socket.destroy();
  });
  socket.resume();
}

function discardRest(req: IncomingMessage, limits: LingerLimits): void {
  const socket = req.socket;
  if (!socket) return;
  const stop = watch(socket, limits);
  // The body is over: a kept connection carries on as usual.
  req.once("end", stop);
  // A reader abandoned by the handler (a web stream over this request) would
  // otherwise keep pausing the flow: nobody needs the body once answered.
  req.removeAllListeners("data");
  req.resume();
}

/**
 * Closes the connection once the client has sent `bytes` more or `ms` passed;
 * returns the function that stops watching. Counted on the socket: a request
 * Node has already dumped no longer emits its body.
 */
function watch(socket: Socket, limits: LingerLimits): () => void {
  let seen = 0;
  const onData = (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > limits.bytes) giveUp();
  };
  const stop = () => {
    clearTimeout(timer);
    socket.off("data", onData);
  };
  const giveUp = () => {
    stop();
    // Read no more; the answer still goes out whole before the close.
    socket.pause();
    closeWhenWritten.call(socket);
  };
  const timer = setTimeout(giveUp, limits.ms);
  timer.unref();
  socket.on("data", onData);
  socket.once("close", stop);
  return stop;
}
