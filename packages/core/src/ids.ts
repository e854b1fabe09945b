import { createHash, randomBytes } from "node:crypto";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lower case

function base32(bytes: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

let lastMs = 0;
let counter = 0;

/**
 * Time-ordered unique id (`<prefix>_<10 chars time><4 chars counter><12 chars random>`).
 * Sorting ids sorts by creation time, which the stores rely on for FIFO order.
 */
export function newId(prefix: string): string {
  const now = Date.now();
  if (now === lastMs) counter++;
  else {
    lastMs = now;
    counter = 0;
  }
  const time = now.toString(32).padStart(10, "0");
  const seq = counter.toString(32).padStart(4, "0");
  return `${prefix}_${time}${seq}${base32(randomBytes(8)).slice(0, 12)}`;
}

/** Short stable digest for turning arbitrary strings into safe path and key components. */
export function digest(input: string, length = 20): string {
  return base32(createHash("sha256").update(input).digest()).slice(0, length);
}

/** Random url-safe token with `bytes` of entropy. */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString("base64url");
}
