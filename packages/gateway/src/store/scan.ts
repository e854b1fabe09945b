import type { EventStreams, KeyValue, StreamEntry } from "./port.ts";

const PAGE = 500;

/** Every key under `prefix` with its value, a page at a time (for sweeps and erasures, not hot paths). */
export async function* scanKeys(
  kv: Pick<KeyValue, "list">,
  prefix: string,
): AsyncGenerator<{ key: string; value: string }> {
  let after: string | undefined;
  for (;;) {
    const page = await kv.list(prefix, { limit: PAGE, ...(after ? { after } : {}) });
    yield* page;
    if (page.length < PAGE) return;
    after = page[page.length - 1]!.key;
  }
}

/** Every entry of a stream, oldest first, a page at a time. */
export async function* streamEntries(
  store: { streams: Pick<EventStreams, "range"> },
  stream: string,
): AsyncGenerator<StreamEntry> {
  let after: string | undefined;
  for (;;) {
    const page = await store.streams.range(stream, { limit: PAGE, ...(after ? { after } : {}) });
    yield* page;
    if (page.length < PAGE) return;
    after = page[page.length - 1]!.id;
  }
}
