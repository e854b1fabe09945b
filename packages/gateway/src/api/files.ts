import { LobuError } from "@lobu/core";
import { Hono } from "hono";
import type { ApiEnv } from "../access/auth.ts";
import { endpoint } from "../access/endpoint.ts";
import { authorizeFor } from "../access/permissions.ts";
import type { FileBlobs } from "../conversations/file-blobs.ts";

/** What the file routes use. */
export interface FileRouteDeps {
  fileBlobs: Pick<FileBlobs, "get">;
}

/**
 * Files the agent sent a REST conversation (`send_file`, the `file` event's
 * `url`): downloadable with a token that may read the message it belongs to
 * (the roles matrix, `messages.read`), until `[files] download_ttl`.
 */
export function fileRoutes(d: FileRouteDeps): Hono<ApiEnv> {
  const r = new Hono<ApiEnv>();
  r.get(
    "/:fileId",
    endpoint("messages.read", {}, async (c, { token }) => {
      const id = c.req.param("fileId") ?? "";
      const blob = await d.fileBlobs.get(id);
      // An upload is never handed out again: only files the agent sent are downloads.
      if (blob?.kind !== "sent")
        throw new LobuError("file_not_found", "no such file, or its download expired", {
          status: 404,
          hint: "Downloads last [files] download_ttl; ask the agent to send the file again.",
        });
      authorizeFor(token, "messages.read", blob.origin, `file ${id}`);
      return new Response(new Uint8Array(blob.data), {
        status: 200,
        headers: {
          "content-type": blob.mimeType,
          "content-length": String(blob.data.length),
          "content-disposition": contentDisposition(blob.name),
          // Never rendered as a page of the gateway's origin.
          "x-content-type-options": "nosniff",
          "content-security-policy": "sandbox",
          "cache-control": "private, no-store",
        },
      });
    }),
  );
  return r;
}

/** `attachment` with an ASCII fallback name and the exact one (RFC 6266 / 5987). */
function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}
