import { generateKeyPairSync, type KeyObject, randomBytes } from "node:crypto";
import { exportJWK, type JWTPayload, SignJWT } from "jose";

/**
 * The keys the emulator signs with, as Google does: the Chat service
 * account's (project-number tokens), Google's ID-token key (endpoint-URL
 * tokens), a stranger's (forgeries), and the app's test service account,
 * whose private key the app holds and whose JWT grants the token endpoint
 * checks.
 */
export const CHAT_ISSUER = "chat@system.gserviceaccount.com";
export const GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token";

export interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function rsaKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { kid: randomBytes(20).toString("hex"), privateKey, publicKey };
}

export async function jwksOf(...keys: SigningKey[]): Promise<{ keys: unknown[] }> {
  return {
    keys: await Promise.all(
      keys.map(async (k) => ({
        ...(await exportJWK(k.publicKey)),
        kid: k.kid,
        alg: "RS256",
        use: "sig",
      })),
    ),
  };
}

export function signToken(key: SigningKey, claims: JWTPayload): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "RS256", kid: key.kid, typ: "JWT" })
    .sign(key.privateKey);
}

/** The claims Chat puts in its bearer token, per audience mode. */
export function chatClaims(
  mode: "project-number" | "endpoint-url",
  audience: string,
  nowSec = Math.floor(Date.now() / 1000),
): JWTPayload {
  const times = { iat: nowSec, exp: nowSec + 3600 };
  return mode === "project-number"
    ? { iss: CHAT_ISSUER, aud: audience, ...times }
    : {
        iss: "https://accounts.google.com",
        aud: audience,
        azp: "113000000000000000000",
        sub: "113000000000000000000",
        email: CHAT_ISSUER,
        email_verified: true,
        ...times,
      };
}
