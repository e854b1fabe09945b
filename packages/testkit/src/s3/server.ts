import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * An S3-compatible object store for tests: path-style requests
 * (`/<bucket>/<key>`), PutObject (with S3's conditional writes), GetObject, HeadObject, DeleteObject and
 * ListObjectsV2, each checked against AWS Signature Version 4 as S3 checks it
 * (the signed headers, the payload hash the client signed, the date scope), so
 * the official `@aws-sdk/client-s3` talks to it as to a real bucket. Objects
 * live in memory.
 */

export interface S3EmulatorOptions {
  accessKeyId: string;
  secretAccessKey: string;
  region?: string;
  /** Buckets that exist (others answer NoSuchBucket). */
  buckets: string[];
}

export interface S3Object {
  body: Buffer;
  etag: string;
  lastModified: Date;
}

export interface S3Emulator {
  /** Endpoint for the client (`forcePathStyle: true`). */
  readonly url: string;
  /** bucket → key → object. */
  readonly objects: Map<string, Map<string, S3Object>>;
  /** Requests refused for their signature (forged, wrong key, tampered). */
  readonly refused: number;
  /** Conditional writes refused (If-Match / If-None-Match not met). */
  readonly conditionsRefused: number;
  close(): Promise<void>;
}

const xml = (body: string) => `<?xml version="1.0" encoding="UTF-8"?>\n${body}`;
const escapeXml = (s: string) => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

function error(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { "content-type": "application/xml" });
  res.end(xml(`<Error><Code>${code}</Code><Message>${escapeXml(message)}</Message></Error>`));
}

/** RFC 3986 encoding as SigV4 wants it (S3: path segments are encoded once). */
function uriEncode(s: string, keepSlash: boolean): string {
  return [...Buffer.from(s, "utf8")]
    .map((b) => {
      const c = String.fromCharCode(b);
      if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === "/")) return c;
      return `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
    })
    .join("");
}

const hmac = (key: Buffer | string, data: string) =>
  createHmac("sha256", key).update(data).digest();
const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

/** Whether the request carries a valid SigV4 signature of this secret. */
function signatureValid(
  req: IncomingMessage,
  url: URL,
  body: Buffer,
  opts: S3EmulatorOptions,
): boolean {
  const auth = req.headers.authorization ?? "";
  const m =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(
      auth,
    );
  if (!m) return false;
  const [, keyId, day, region, signedList, signature] = m as unknown as string[];
  if (keyId !== opts.accessKeyId || region !== (opts.region ?? "us-east-1")) return false;
  const amzDate = String(req.headers["x-amz-date"] ?? "");
  if (!amzDate.startsWith(day!)) return false;
  const payloadHash = String(req.headers["x-amz-content-sha256"] ?? "");
  // A signed payload hash must be the body's; UNSIGNED-PAYLOAD is S3's documented opt-out.
  if (payloadHash !== "UNSIGNED-PAYLOAD" && payloadHash !== sha256(body)) return false;
  const signed = signedList!.split(";");
  if (!signed.includes("host") || !signed.includes("x-amz-date")) return false;
  const headers = signed
    .map((h) => {
      const v = req.headers[h];
      const value = Array.isArray(v) ? v.join(",") : (v ?? "");
      return `${h}:${value.trim().replace(/\s+/g, " ")}\n`;
    })
    .join("");
  const query = [...url.searchParams]
    .map(([k, v]) => [uriEncode(k, false), uriEncode(v, false)] as const)
    .sort(([a, av], [b, bv]) => (a === b ? (av < bv ? -1 : 1) : a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const path = uriEncode(decodeURIComponent(url.pathname), true);
  const canonical = [req.method, path, query, headers, signedList, payloadHash].join("\n");
  const scope = `${day}/${region}/s3/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256(canonical)].join("\n");
  let key = hmac(`AWS4${opts.secretAccessKey}`, day!);
  for (const part of [region!, "s3", "aws4_request"]) key = hmac(key, part);
  const expected = Buffer.from(hmac(key, toSign).toString("hex"));
  const given = Buffer.from(signature!);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export async function startS3Emulator(opts: S3EmulatorOptions): Promise<S3Emulator> {
  const objects = new Map<string, Map<string, S3Object>>(
    opts.buckets.map((b) => [b, new Map<string, S3Object>()]),
  );
  let refused = 0;
  let conditionsRefused = 0;
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? "/", "http://s3.local");
    if (!signatureValid(req, url, body, opts)) {
      refused++;
      return error(
        res,
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match",
      );
    }
    const [, bucketName = "", ...rest] = decodeURIComponent(url.pathname).split("/");
    const key = rest.join("/");
    const bucket = objects.get(bucketName);
    if (!bucket) return error(res, 404, "NoSuchBucket", `no bucket ${bucketName}`);

    if (req.method === "GET" && !key && url.searchParams.get("list-type") === "2") {
      const prefix = url.searchParams.get("prefix") ?? "";
      const keys = [...bucket.keys()].filter((k) => k.startsWith(prefix)).sort();
      const contents = keys
        .map((k) => {
          const o = bucket.get(k)!;
          return `<Contents><Key>${escapeXml(k)}</Key><ETag>${o.etag}</ETag><Size>${o.body.length}</Size><LastModified>${o.lastModified.toISOString()}</LastModified></Contents>`;
        })
        .join("");
      res.writeHead(200, { "content-type": "application/xml" });
      return res.end(
        xml(
          `<ListBucketResult><Name>${bucketName}</Name><Prefix>${escapeXml(prefix)}</Prefix><KeyCount>${keys.length}</KeyCount><IsTruncated>false</IsTruncated>${contents}</ListBucketResult>`,
        ),
      );
    }
    if (!key) return error(res, 400, "InvalidRequest", "an object key is required");
    if (req.method === "PUT") {
      // Conditional writes, as S3 has them (If-None-Match: *, If-Match: <etag>): 412 when unmet.
      const ifMatch = req.headers["if-match"];
      const ifNoneMatch = req.headers["if-none-match"];
      const current = bucket.get(key);
      if (
        (ifNoneMatch === "*" && current) ||
        (typeof ifMatch === "string" && ifMatch !== current?.etag)
      ) {
        conditionsRefused++;
        return error(res, 412, "PreconditionFailed", "At least one of the preconditions failed");
      }
      const etag = `"${createHash("md5").update(body).digest("hex")}"`;
      bucket.set(key, { body, etag, lastModified: new Date() });
      res.writeHead(200, { etag });
      return res.end();
    }
    if (req.method === "DELETE") {
      bucket.delete(key);
      res.writeHead(204);
      return res.end();
    }
    const object = bucket.get(key);
    if (req.method === "GET" || req.method === "HEAD") {
      if (!object) {
        if (req.method === "HEAD") {
          res.writeHead(404);
          return res.end();
        }
        return error(res, 404, "NoSuchKey", "The specified key does not exist.");
      }
      res.writeHead(200, {
        etag: object.etag,
        "content-length": object.body.length,
        "last-modified": object.lastModified.toUTCString(),
        "content-type": "application/octet-stream",
      });
      return res.end(req.method === "GET" ? object.body : undefined);
    }
    return error(res, 405, "MethodNotAllowed", `${req.method} is not supported here`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    objects,
    get refused() {
      return refused;
    },
    get conditionsRefused() {
      return conditionsRefused;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
