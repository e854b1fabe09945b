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
  let buffered = "";
  input.setEncoding("utf8");
  input.on("data", (chunk: string) => {
    buffered += chunk;
    let nl = buffered.indexOf("\n");
    while (nl !== -1) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.trim()) {
        try {
          onValue(JSON.parse(line));
        } catch (err) {
          onError(new Error(`bad NDJSON line: ${(err as Error).message}`));
        }
      }
      nl = buffered.indexOf("\n");
    }
    if (buffered.length > MAX_LINE_BYTES) {
      buffered = "";
      onError(new Error("NDJSON line exceeds the maximum size"));
    }
  });
}

export function writeNdjson(output: Writable, value: unknown): boolean {
  return output.write(`${JSON.stringify(value)}\n`);
}
