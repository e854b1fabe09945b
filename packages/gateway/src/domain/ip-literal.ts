import ipaddr from "ipaddr.js";

export type IpAddress = ipaddr.IPv4 | ipaddr.IPv6;

/**
 * Parse any textual IP form a URL or resolver might carry: dotted quad, single
 * decimal (`2130706433`), octal (`0177.0.0.1`), hex (`0x7f.0.0.1`), short forms
 * (`127.1`), bracketed or zoned IPv6. Null when `text` is not an IP literal.
 */
export function parseIpLiteral(text: string): IpAddress | null {
  let t = text.trim();
  if (t.startsWith("[") && t.endsWith("]")) t = t.slice(1, -1);
  if (t.endsWith(".")) t = t.slice(0, -1);
  if (t.includes(":")) return ipaddr.IPv6.isValid(t) ? ipaddr.IPv6.parse(t) : null;
  // Numeric forms only: a name like `cafe.example` must not be read as hex.
  if (!/^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$/i.test(t)) return null;
  return ipaddr.IPv4.isValid(t) ? ipaddr.IPv4.parse(t) : null;
}
