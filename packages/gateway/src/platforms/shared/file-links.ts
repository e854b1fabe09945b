import { randomBytes } from "node:crypto";
import type { Context } from "hono";
import { z } from "zod";
import type { OutboundFile } from "../../domain/files.ts";
import { readRecord } from "../../util/stored-record.ts";
import type { AdapterContext } from "./adapter.ts";

/**
 * A file the agent sends, as a download link to the gateway, for platforms
 * whose bot cannot upload one itself (Teams beyond small pictures, Google
 * Chat): an unguessable URL (256-bit token) that works for an hour, posted
 * only into the conversation the turn belongs to, served as a download and
 * never rendered on the gateway's origin.
 */

/** How long a file's download link works. */
export const FILE_LINK_TTL_MS = 60 * 60_000;

const linkKey = (token: string) => `file:${token}`;
const StoredFile = z.object({
  name: z.string(),
  mimeType: z.string(),
  data: z.string(),
});

/** Keeps `file` for an hour and answers its link: `<public_url>/<platform>/files/<token>/<name>`. */
export async function storeFileLink(
  state: AdapterContext["state"],
  publicUrl: string,
  platform: string,
  file: OutboundFile,
): Promise<string> {
  const token = randomBytes(32).toString("base64url");
  const stored = { name: file.name, mimeType: file.mimeType, data: file.data.toString("base64") };
  await state.set(linkKey(token), JSON.stringify(stored), FILE_LINK_TTL_MS);
  return `${publicUrl.replace(/\/+$/, "")}/${platform}/files/${token}/${encodeURIComponent(file.name)}`;
}

/**
 * GET /<platform>/files/<token>/<name>: a file the agent sent, for the hour
 * its link works. Served as a download (never rendered on the gateway's origin).
 */
export function fileLinkRoute(
  ctx: Pick<AdapterContext, "routes" | "state" | "log">,
  platform: string,
): void {
  ctx.routes.get(`/${platform}/files/:token/:name`, async (c: Context) => {
    const token = c.req.param("token") ?? "";
    if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return c.text("No such file.", 404);
    const raw = await ctx.state.get(linkKey(token));
    const file = raw
      ? readRecord(StoredFile, raw, { record: `${platform} file link`, key: "file:…" }, ctx.log)
      : undefined;
    if (!file)
      return c.text("This download link has expired; ask the agent to send the file again.", 404);
    const data = Buffer.from(file.data, "base64");
    return c.body(data, 200, {
      "content-type": file.mimeType,
      "content-length": String(data.length),
      "content-disposition": `attachment; filename*=UTF-8''${encodeURIComponent(file.name)}`,
      "x-content-type-options": "nosniff",
      "content-security-policy": "sandbox",
      "cache-control": "private, no-store",
    });
  });
}
