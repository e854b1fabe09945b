import { Sha256 } from "@smithy/core/checksum";
import { SignatureV4 } from "@smithy/signature-v4";
import type { TokenUsage } from "../usage.ts";
import { AwsEventStreamUsage, count, isRecord } from "./readers.ts";
import type { ProviderWire, WireProvider } from "./types.ts";

/** Bedrock's error names by status, for the relay's own refusals. */
const AWS_ERROR: Record<number, string> = {
  400: "ValidationException",
  401: "AccessDeniedException",
  403: "AccessDeniedException",
  413: "ValidationException",
  429: "ThrottlingException",
  502: "ServiceUnavailableException",
};

const CALL = /^\/model\/([^/]{1,512})\/(converse-stream|converse)$/;

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/**
 * The AWS credentials a Bedrock provider secret holds: JSON
 * (`{"accessKeyId":…,"secretAccessKey":…,"sessionToken":…}`) or
 * `ACCESS_KEY_ID:SECRET_ACCESS_KEY`.
 */
export function parseAwsCredentials(secret: string): AwsCredentials {
  const text = secret.trim();
  if (text.startsWith("{")) {
    try {
      const c = JSON.parse(text) as Partial<AwsCredentials>;
      if (typeof c.accessKeyId === "string" && typeof c.secretAccessKey === "string") {
        return {
          accessKeyId: c.accessKeyId,
          secretAccessKey: c.secretAccessKey,
          ...(typeof c.sessionToken === "string" ? { sessionToken: c.sessionToken } : {}),
        };
      }
    } catch {
      // reported below
    }
  } else {
    const colon = text.indexOf(":");
    if (colon > 0 && colon < text.length - 1) {
      return { accessKeyId: text.slice(0, colon), secretAccessKey: text.slice(colon + 1) };
    }
  }
  throw new Error(
    'the Bedrock key must be AWS credentials: "ACCESS_KEY_ID:SECRET_ACCESS_KEY" or JSON with accessKeyId, secretAccessKey (and sessionToken)',
  );
}

/** The region calls are signed for: the provider's `region`, else the endpoint's, else us-east-1. */
export function bedrockRegion(provider: WireProvider): string {
  if (provider.region) return provider.region;
  const host = new URL(provider.baseUrl).hostname;
  return /^bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com/.exec(host)?.[1] ?? "us-east-1";
}

function takeBedrock(body: Record<string, unknown>, usage: TokenUsage): void {
  const u = body.usage;
  if (!isRecord(u)) return;
  usage.cacheReadTokens = count(u.cacheReadInputTokens);
  usage.cacheWriteTokens = count(u.cacheWriteInputTokens);
  // Bedrock's inputTokens leaves out cached input; the total includes it.
  usage.inputTokens = count(u.inputTokens) + usage.cacheReadTokens + usage.cacheWriteTokens;
  usage.outputTokens = count(u.outputTokens);
}

/**
 * Amazon Bedrock's Converse API. The worker's SDK authenticates with a bearer
 * placeholder; the relay drops it (and any signature of the worker's) and signs
 * the exact body it forwards with AWS Signature V4 and the gateway's
 * credentials, so the sandbox never holds an AWS secret.
 */
export const bedrockWire: ProviderWire = {
  api: "bedrock-converse-stream",
  routes: [
    {
      method: "POST",
      path: /^\/model\/[^/]{1,512}\/converse-stream$/,
      label: "POST /model/<model>/converse-stream",
      generates: true,
    },
    {
      method: "POST",
      path: /^\/model\/[^/]{1,512}\/converse$/,
      label: "POST /model/<model>/converse",
      generates: true,
    },
  ],
  placeholderHeaders: ["authorization"],
  credentialHeaders: [
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "x-amzn-bedrock-accept",
  ],
  modelOf(path) {
    const raw = CALL.exec(path)?.[1];
    if (raw === undefined) return undefined;
    try {
      return decodeURIComponent(raw);
    } catch {
      return undefined;
    }
  },
  outputFields: ["inferenceConfig.maxTokens"],
  pathWithModel: (path, model) =>
    path.replace(
      CALL,
      (_m, _old, method: string) => `/model/${encodeURIComponent(model)}/${method}`,
    ),
  async authenticate(req, key, provider) {
    const signer = new SignatureV4({
      service: "bedrock",
      region: bedrockRegion(provider),
      credentials: parseAwsCredentials(key),
      sha256: Sha256,
    });
    const url = req.url;
    const signed = await signer.sign({
      method: req.method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port ? { port: Number(url.port) } : {}),
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      // Only what the provider must see unchanged is signed; the body is, by its hash.
      headers: {
        host: url.host,
        "content-type": req.headers.get("content-type") ?? "application/json",
      },
      body: req.body,
    });
    for (const [name, value] of Object.entries(signed.headers)) {
      if (name !== "host") req.headers.set(name, value);
    }
  },
  usage: (contentType) =>
    new AwsEventStreamUsage(
      contentType,
      (type, body, usage) => {
        if (type !== "metadata") return false;
        takeBedrock(body, usage);
        return true;
      },
      (body, usage) => {
        takeBedrock(body, usage);
        return false;
      },
    ),
  // `__type` is how the AWS SDK names the error (the service sends it in x-amzn-errortype too).
  errorBody: (status, _kind, message) =>
    JSON.stringify({ __type: AWS_ERROR[status] ?? "InternalServerException", message }),
};
