import { generateKeyPairSync, type KeyObject, randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { decodeJwt, jwtVerify } from "jose";
import { geminiWireFor, sendGoogleError } from "./gemini.ts";
import { sendJson } from "./http.ts";
import { bearerToken, type Wire } from "./wire.ts";

/** The audience Google's token endpoint expects in a service account's assertion. */
const GOOGLE_TOKEN_AUD = "https://oauth2.googleapis.com/token";
const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform";

interface ServiceAccount {
  email: string;
  projectId: string;
  publicKey: KeyObject;
}

interface AccessToken {
  email: string;
  projectId: string;
  expiresAt: number;
}

/**
 * Google's OAuth token endpoint for service accounts (`POST /token`, the
 * JWT-bearer grant): a signed assertion of a known service account buys an
 * access token for an hour. Vertex AI routes accept only tokens issued here.
 */
export class GoogleTokenEndpoint {
  readonly #accounts = new Map<string, ServiceAccount>();
  readonly #tokens = new Map<string, AccessToken>();
  /** Access tokens issued so far (to see that clients reuse them). */
  issued = 0;

  /** A new service account's JSON key, as the Cloud console downloads it, with `token_uri` pointing here. */
  createKey(tokenUri: string, opts: { email?: string; projectId?: string } = {}): string {
    const projectId = opts.projectId ?? "lobu-test";
    const email =
      opts.email ?? `agent-${this.#accounts.size + 1}@${projectId}.iam.gserviceaccount.com`;
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    this.#accounts.set(email, { email, projectId, publicKey });
    const keyId = randomBytes(20).toString("hex");
    return JSON.stringify({
      type: "service_account",
      project_id: projectId,
      private_key_id: keyId,
      private_key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      client_email: email,
      client_id: String(100_000_000_000_000_000_000n + BigInt(this.#accounts.size)),
      auth_uri: "https://accounts.google.com/o/oauth2/auth",
      token_uri: tokenUri,
      universe_domain: "googleapis.com",
    });
  }

  /** Answers `POST /token`. */
  async handle(raw: string, res: ServerResponse): Promise<void> {
    const form = new URLSearchParams(raw);
    const refuse = (error: string, description: string) =>
      sendJson(res, 400, { error, error_description: description });
    if (form.get("grant_type") !== JWT_BEARER)
      return refuse("unsupported_grant_type", "Invalid grant_type.");
    const assertion = form.get("assertion") ?? "";
    let iss: unknown;
    try {
      iss = decodeJwt(assertion).iss;
    } catch {
      return refuse(
        "invalid_grant",
        "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.",
      );
    }
    const account = typeof iss === "string" ? this.#accounts.get(iss) : undefined;
    if (!account) return refuse("invalid_grant", "Invalid grant: account not found");
    try {
      const { payload } = await jwtVerify(assertion, account.publicKey, {
        issuer: account.email,
        audience: GOOGLE_TOKEN_AUD,
        algorithms: ["RS256"],
        maxTokenAge: "1h",
      });
      const scopes = String(payload.scope ?? "").split(" ");
      if (!scopes.includes(CLOUD_PLATFORM))
        return refuse("invalid_scope", "Invalid OAuth scope or ID token audience provided.");
    } catch {
      return refuse("invalid_grant", "Invalid JWT Signature.");
    }
    const token = `ya29.mock_${randomBytes(24).toString("base64url")}`;
    this.#tokens.set(token, {
      email: account.email,
      projectId: account.projectId,
      expiresAt: Date.now() + 3600_000,
    });
    this.issued++;
    sendJson(res, 200, { access_token: token, expires_in: 3599, token_type: "Bearer" });
  }

  /** The account behind a live access token. */
  tokenInfo(token: string | undefined): AccessToken | undefined {
    const t = token ? this.#tokens.get(token) : undefined;
    return t && t.expiresAt > Date.now() ? t : undefined;
  }
}

/**
 * Vertex AI's publisher models
 * (`/v1/projects/<p>/locations/<l>/publishers/google/models/<m>:streamGenerateContent`):
 * Gemini's wire with an OAuth access token from the token endpoint, for a
 * service account of that project.
 */
export function vertexWire(tokens: GoogleTokenEndpoint): Wire {
  return {
    ...geminiWireFor("vertex"),
    apiKey: (headers) => bearerToken(headers),
    authError: () => ({
      status: 401,
      type: "UNAUTHENTICATED",
      message:
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    }),
    verify: async (req: IncomingMessage, _raw: string, url: URL) => {
      const info = tokens.tokenInfo(bearerToken(req.headers));
      if (!info) return vertexWire(tokens).authError(undefined);
      const project = /^\/v1(?:beta1)?\/projects\/([^/]+)\//.exec(url.pathname)?.[1];
      if (project !== info.projectId) {
        return {
          status: 403,
          type: "PERMISSION_DENIED",
          message: `Permission 'aiplatform.endpoints.predict' denied on resource '${url.pathname}' (or it may not exist).`,
        };
      }
      return undefined;
    },
    sendError: sendGoogleError,
  };
}
