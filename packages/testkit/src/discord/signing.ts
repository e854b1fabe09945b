import { createPrivateKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";

/** An application's Ed25519 key pair: Discord signs interactions with it. */
export interface InteractionKeys {
  privateKey: KeyObject;
  /** The "public key" the developer portal shows: 32 bytes, hex. */
  publicKeyHex: string;
}

export function interactionKeys(): InteractionKeys {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const jwk = publicKey.export({ format: "jwk" }) as { x: string };
  return { privateKey, publicKeyHex: Buffer.from(jwk.x, "base64url").toString("hex") };
}

/** X-Signature-Ed25519 for a body: Ed25519 over timestamp + body, hex. */
export function signInteraction(privateKey: KeyObject, timestamp: string, body: string): string {
  return sign(null, Buffer.from(timestamp + body), privateKey).toString("hex");
}

/** A key nobody registered (for forged requests). */
export function strangerKey(): KeyObject {
  return createPrivateKey(
    generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }),
  );
}
