/**
 * Header handling shared by the forwarder and the tunnel code. Headers travel as
 * flat raw arrays (`[name, value, name, value, ...]`) so their order, case and
 * repetitions reach the other side as they were sent.
 */

/** Never forwarded: per-connection (RFC 9110 §7.6.1) or proxy-only. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "expect",
  // Identity of a pooled sandbox: meant for the proxy only.
  "x-lobu-sandbox",
]);

/** Drop hop-by-hop headers, those named in Connection, and any in `drop`. */
export function forwardableHeaders(raw: readonly string[], drop: readonly string[] = []): string[] {
  // The shared set serves the usual request (`Connection: keep-alive` or none):
  // copied only when a name outside it is to be dropped too.
  let dropped: ReadonlySet<string> = HOP_BY_HOP;
  const extra = (names: readonly string[]) => {
    if (names.every((n) => !n || dropped.has(n))) return;
    const more = new Set(dropped);
    for (const n of names) if (n) more.add(n);
    dropped = more;
  };
  if (drop.length) extra(drop);
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === "connection") {
      extra(raw[i + 1]!.split(",").map((t) => t.trim().toLowerCase()));
    }
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (!dropped.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

/** Replace every occurrence of `name` with one header (or remove it when value is undefined). */
export function setHeader(raw: string[], name: string, value: string | undefined): string[] {
  const lower = name.toLowerCase();
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== lower) out.push(raw[i]!, raw[i + 1]!);
  }
  if (value !== undefined) out.push(name, value);
  return out;
}

/** The port a URL of `protocol` means when it names none. */
export function defaultPort(protocol: "http:" | "https:"): number {
  return protocol === "https:" ? 443 : 80;
}

/** `host[:port]` as a Host header / authority, with IPv6 in brackets and default ports left out. */
export function authority(host: string, port: number, protocol: "http:" | "https:"): string {
  const h = host.includes(":") ? `[${host}]` : host;
  return port === defaultPort(protocol) ? h : `${h}:${port}`;
}

/**
 * The credentials of a `Basic` authorization value: the base64 token as sent and
 * its UTF-8 decoding (`user:password`), or null for any other value.
 */
export function parseBasic(value: string | undefined): { token: string; decoded: string } | null {
  const m = value && /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(value);
  if (!m) return null;
  return { token: m[1]!, decoded: Buffer.from(m[1]!, "base64").toString("utf8") };
}
