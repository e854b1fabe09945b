import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  type KeyObject,
  randomBytes,
} from "node:crypto";

/**
 * AES-256-GCM envelope for one value: `v1.<iv>.<ciphertext>.<tag>` (base64url).
 * The AAD is not stored: the caller recomputes it from where the value lives, so
 * a ciphertext moved to another key no longer authenticates.
 */
const FORMAT = "v1";
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class DecryptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DecryptError";
  }
}

/** A raw key turned into a KeyObject once (making one per call dominates small decrypts). */
export type SealKey = Uint8Array | KeyObject;

export function toKeyObject(key: Uint8Array): KeyObject {
  return createSecretKey(key);
}

export function seal(key: SealKey, plaintext: string, aad: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(aad, "utf8"));
  const ct = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return [FORMAT, iv, ct, cipher.getAuthTag()]
    .map((p) => (typeof p === "string" ? p : p.toString("base64url")))
    .join(".");
}

export function open(key: SealKey, sealed: string, aad: string): string {
  const parts = sealed.split(".");
  if (parts.length !== 4 || parts[0] !== FORMAT) {
    throw new DecryptError("unknown ciphertext format");
  }
  const iv = Buffer.from(parts[1]!, "base64url");
  const ct = Buffer.from(parts[2]!, "base64url");
  const tag = Buffer.from(parts[3]!, "base64url");
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) {
    throw new DecryptError("malformed ciphertext");
  }
  const decipher = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.from(aad, "utf8"));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(ct), decipher.final()]).toString("utf8");
  } catch {
    throw new DecryptError("authentication failed (wrong key, tampered or moved ciphertext)");
  }
}
