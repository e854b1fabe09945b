import { createHash } from "node:crypto";

/**
 * A person's export bundle as a download: JSON, named by a digest (never by
 * the user key, which a file name could leak into a downloads folder's
 * listing), and never cached.
 */
export function exportResponse(bundle: { userKey: string; exportedAt: string }): Response {
  const id = createHash("sha256").update(bundle.userKey).digest("hex").slice(0, 12);
  const day = bundle.exportedAt.slice(0, 10);
  return new Response(`${JSON.stringify(bundle, null, 1)}\n`, {
    headers: {
      "content-type": "application/json; charset=utf-8",
      "content-disposition": `attachment; filename="lobu-export-${day}-${id}.json"`,
      "cache-control": "no-store",
    },
  });
}
