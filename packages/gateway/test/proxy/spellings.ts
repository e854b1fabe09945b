/**
 * Ways to write a loopback address that URL parsers and resolvers accept, for
 * every layer that must refuse them: the address parser (addresses.test), the
 * proxy at the socket level (ssrf.test) and a real sandbox (security/ssrf-strict).
 */

/** Every one of these is 127.0.0.1. */
export const LOOPBACK_V4_SPELLINGS = [
  "127.0.0.1",
  "2130706433",
  "0177.0.0.1",
  "0x7f.0.0.1",
  "0x7f000001",
  "127.1",
  "127.0.1",
  "017700000001",
  "127.000.000.001",
] as const;

/** IPv6 forms of loopback, or carrying 127.0.0.1, as they appear in a URL. */
export const LOOPBACK_V6_SPELLINGS = [
  "[::1]",
  "[0:0:0:0:0:0:0:1]",
  "[::ffff:127.0.0.1]",
  "[::ffff:7f00:1]",
  "[0:0:0:0:0:ffff:127.0.0.1]",
  "[::127.0.0.1]",
  "[64:ff9b::7f00:1]",
  "[2002:7f00:1::]",
] as const;
