import type { Logger } from "pino";
import type { AdapterContext } from "./adapter.ts";

/** A single-use marker: what is handled once, and for how long a repeat of it is recognised. */
export interface OnceMarker {
  key: string;
  ttlMs: number;
}

/**
 * The one way a platform handles something once on every gateway sharing the
 * store: a signed request (a captured copy does nothing), a redelivered
 * update, a message a platform sends twice. The first arrival claims `marker`
 * and runs `handle`; a repeat gets `repeat` instead. When handling fails the
 * claim is forgotten, so the platform's own redelivery is taken.
 */
export async function handleOnce<T>(
  opts: { once: AdapterContext["once"]; log: Logger; marker: OnceMarker },
  handle: () => Promise<T>,
  repeat: () => T | Promise<T>,
): Promise<T> {
  const { once, log, marker } = opts;
  if (!(await once.claim(marker.key, marker.ttlMs))) return repeat();
  try {
    return await handle();
  } catch (err) {
    await once
      .release(marker.key)
      .catch((e) =>
        log.warn({ err: e }, "could not forget a failed delivery: its redelivery counts as a copy"),
      );
    throw err;
  }
}
