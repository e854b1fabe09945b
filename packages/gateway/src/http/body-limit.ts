import { LobuError } from "@lobu/core";
import type { Context, MiddlewareHandler } from "hono";

/** The error a bounded body read fails with, and the 413 answer's body. */
export function payloadTooLarge(maxBytes: number): LobuError {
  return new LobuError("payload_too_large", `request body exceeds ${maxBytes} bytes`, {
    status: 413,
    hint: "This endpoint takes small requests only; send less.",
  });
}

/** The 413 answer; the unread rest of the body is discarded by http/linger.ts. */
function refusal(c: Context, maxBytes: number): Response {
  return c.json(payloadTooLarge(maxBytes).toJSON(), 413);
}

/**
 * Middleware that bounds a request body while it is read, never after.
 *
 * - A Content-Length over the limit is refused before a byte is read (Node's
 *   parser never delivers more than the declared length, so a smaller one is
 *   a bound in itself).
 * - A chunked body is counted as the handler reads it and fails the read the
 *   moment it passes the limit: at most `maxBytes` are ever held, and the
 *   answer is 413 whatever the handler made of the failed read.
 * - GET and HEAD get no body stream at all (Node would read a chunked one to
 *   the end only to discard it), so a chunked body there is refused outright.
 *
 * Nothing is read up front: a handler can still refuse a request on its
 * headers alone (a missing signature, a wrong secret token) first. Unread
 * data after a refusal is discarded until the connection is closed (see
 * http/linger.ts).
 */
export function boundedBody(maxBytes: number): MiddlewareHandler {
  return async (c, next) => {
    const raw = c.req.raw;
    const declared = raw.headers.get("content-length");
    const chunked = raw.headers.has("transfer-encoding");
    if (declared !== null && !chunked) {
      if (!/^\d{1,15}$/.test(declared) || Number(declared) > maxBytes) return refusal(c, maxBytes);
      return next();
    }
    if (!chunked) return next();
    if (!raw.body) return refusal(c, maxBytes);

    const source = raw.body;
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    let seen = 0;
    let overflowed = false;
    const counted = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          reader ??= source.getReader();
          const { done, value } = await reader.read();
          if (done) {
            controller.close();
            return;
          }
          seen += value.byteLength;
          if (seen > maxBytes) {
            // The rest stays unread; the server closes the connection after the 413.
            overflowed = true;
            controller.error(payloadTooLarge(maxBytes));
            return;
          }
          controller.enqueue(value);
        },
        async cancel(reason) {
          await (reader ? reader.cancel(reason) : source.cancel(reason));
        },
      },
      { highWaterMark: 0 },
    );
    c.req.raw = new Request(raw, { body: counted, duplex: "half" } as RequestInit);
    await next();
    if (overflowed) {
      // Whatever the handler answered (a "malformed body" 400, a cookie): the answer is 413.
      c.res = undefined;
      c.res = refusal(c, maxBytes);
    }
  };
}
