import type { Readable, Writable } from "node:stream";

/** Largest line accepted on a control channel; a longer one is a protocol violation. */
export const MAX_LINE_BYTES = 8 * 1024 * 1024;

/**
 * Split a byte stream into JSON values, one per line. Malformed lines are reported
 * to `onError` and skipped so one bad message cannot wedge the channel.
 */
export function readNdjson(
  input: Readable,
  onValue: (value: unknown) => void,
  onError: (err: Error) => void = () => {},
): void {
  // The unfinished line so far. Only each new chunk is searched for a line
  // break (never the whole buffer again), so a long line costs linear time.
  let buffered = "";
  // Inside a line that passed the limit: everything up to its end is dropped.
  let skipping = false;
  input.setEncoding("utf8");
  input.on("data", (chunk: string) => {
    let start = 0;
    let nl = chunk.indexOf("\n");
    while (nl !== -1) {
      const line = buffered + chunk.slice(start, nl);
      buffered = "";
      start = nl + 1;
      if (skipping) skipping = false;
      else if (line.trim()) {
        try {
          onValue(JSON.parse(line));
        } catch (err) {
          onError(new Error(`bad NDJSON line: ${(err as Error).message}`));
        }
      }
      nl = chunk.indexOf("\n", start);
    }
    if (skipping) return;
    buffered += chunk.slice(start);
    if (buffered.length > MAX_LINE_BYTES) {
      buffered = "";
      skipping = true;
      onError(new Error("NDJSON line exceeds the maximum size"));
    }
  });
}

export function writeNdjson(output: Writable, value: unknown): boolean {
  return output.write(`${JSON.stringify(value)}\n`);
}
