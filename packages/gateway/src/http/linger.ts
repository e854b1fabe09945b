import type { IncomingMessage, Server } from "node:http";

/** How long a client whose body went unread may go on sending (discarded) after its answer. */
const LINGER_MS = 5_000;
/** And how much of it, at most. */
const LINGER_BYTES = 64 * 1024 * 1024;

/**
 * Lingering close (as nginx does it): when an answer is sent before the request
 * body was read to its end (a 413, a refused signature), the rest of the body is
 * read and discarded, never held, for a bounded time and size, then the
 * connection is closed. Closing at once would reset the connection under a
 * client still sending, and on a loaded client the reset can overtake the answer
 * it has not read yet: it would never see why it was refused.
 */
export function lingerAfterAnswer(
  server: Server,
  limits: { ms: number; bytes: number } = { ms: LINGER_MS, bytes: LINGER_BYTES },
): void {
  server.on("request", (req: IncomingMessage, res) => {
    res.once("finish", () => {
      if (!req.readableEnded && !req.destroyed) discardRest(req, limits);
    });
  });
}

function discardRest(req: IncomingMessage, limits: { ms: number; bytes: number }): void {
  let seen = 0;
  const done = () => {
    clearTimeout(timer);
    req.off("data", onData);
  };
  const giveUp = () => {
    done();
    req.socket?.destroySoon();
  };
  const onData = (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > limits.bytes) giveUp();
  };
  const timer = setTimeout(giveUp, limits.ms);
  timer.unref();
  // A reader abandoned by the handler (a web stream over this request) would
  // otherwise keep pausing the flow: nobody needs the body once answered.
  req.removeAllListeners("data");
  req.on("data", onData);
  req.once("end", done);
  req.once("close", done);
  req.resume();
}
