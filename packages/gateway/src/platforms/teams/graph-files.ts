import { z } from "zod";
import { type DownloadOptions, FileRefused, FileTooLarge } from "../../domain/files.ts";
import { serviceUrlAllowed, type TeamsSettings } from "./config.ts";
import { GraphTokens } from "./graph-tokens.ts";

/**
 * Files shared in Teams channels and group chats: the activity carries a
 * `reference` attachment whose `contentUrl` is the file in SharePoint (the
 * team's site) or the sender's OneDrive, which the bot reads through
 * Microsoft Graph with its own application token (client credentials, from
 * the tenant the activity came from; the tenant's admin grants the bot
 * `Files.Read.All`).
 *
 * That token can read far more than the sender can, so the bot must not be a
 * confused deputy: it reads only a file the **sender created** (Graph's
 * `createdBy` is the sender's Entra object id, as the signed activity names
 * it), never one a crafted message merely points at. Graph answers the
 * content with a redirect to a pre-authenticated download URL, fetched
 * without the token and only on SharePoint hosts.
 *
 * Out, with `upload_channel_files` (and `Files.ReadWrite.All`): a file the
 * agent sends in a channel is uploaded into the channel's files, where only
 * the team's members can open it.
 */

/** What parse.ts reads out of a signed activity for a shared file (kept in the file's ref). */
export const SharedFileRef = z.object({
  url: z.string().max(4000),
  tenant: z.string().max(64),
  /** The sender's Entra object id (`from.aadObjectId`). */
  sender: z.string().max(64),
});
export type SharedFileRef = z.infer<typeof SharedFileRef>;

const DriveItem = z.object({
  id: z.string(),
  size: z.number().int().nonnegative().optional(),
  file: z.object({}).loose().optional(),
  createdBy: z
    .object({ user: z.object({ id: z.string().optional() }).loose().optional() })
    .loose()
    .optional(),
});

const Folder = z.object({
  id: z.string().min(1).max(512),
  parentReference: z.object({ driveId: z.string().min(1).max(512) }).loose(),
});
const Uploaded = z.object({ webUrl: z.string().max(4000) });

/** `u!` and the URL in unpadded base64url: how Graph names a sharing URL (`/shares/{id}`). */
export function shareIdOf(url: string): string {
  return `u!${Buffer.from(url).toString("base64url")}`;
}

const NO_PERMISSION =
  "the bot may not read files in this team or chat (a Teams admin grants its app the Microsoft Graph application permission Files.Read.All); send it in your 1:1 chat with the bot instead";

export class GraphFiles {
  readonly #settings: Pick<TeamsSettings, "graphUrl">;
  /** Where the file itself may be (SharePoint, OneDrive) and Graph's redirect may point. */
  readonly #hosts: readonly string[];
  readonly #tokens: GraphTokens;

  constructor(
    settings: Pick<TeamsSettings, "appId" | "appPassword" | "tokenUrl" | "graphUrl">,
    hosts: readonly string[],
    tokens: GraphTokens = new GraphTokens(settings),
  ) {
    this.#settings = settings;
    this.#hosts = hosts;
    this.#tokens = tokens;
  }

  /** The file's content (a response with a body), after the checks above. */
  async open(ref: SharedFileRef, opts: DownloadOptions): Promise<Response> {
    if (!serviceUrlAllowed(ref.url, this.#hosts))
      throw new FileRefused("its link is not on SharePoint/OneDrive");
    if (!GraphTokens.valid(ref.tenant) || !ref.sender)
      throw new FileRefused("Teams did not say which tenant and person it came from");
    const share = `${this.#settings.graphUrl}/shares/${shareIdOf(ref.url)}/driveItem`;
    const signal = opts.signal ? { signal: opts.signal } : {};
    const auth = { authorization: `Bearer ${await this.#token(ref.tenant)}` };
    const meta = await fetch(`${share}?$select=id,size,file,createdBy`, {
      headers: auth,
      redirect: "error",
      ...signal,
    }).catch(() => {
      throw new Error("could not reach Microsoft Graph");
    });
    if (meta.status === 401 || meta.status === 403) throw new FileRefused(NO_PERMISSION);
    if (meta.status === 404) throw new FileRefused("Microsoft Graph does not know this file");
    if (!meta.ok) throw new Error(`Microsoft Graph refused the file (${meta.status})`);
    const item = DriveItem.safeParse(await meta.json().catch(() => undefined));
    if (!item.success || !item.data.file) throw new FileRefused("it is not a file");
    const creator = item.data.createdBy?.user?.id ?? "";
    if (creator.toLowerCase() !== ref.sender.toLowerCase())
      throw new FileRefused(
        "the bot reads only files you uploaded yourself; download it and send it again",
      );
    if ((item.data.size ?? 0) > opts.maxBytes) throw new FileTooLarge(opts.maxBytes);
    // Graph answers with a redirect to a pre-authenticated URL: followed by
    // hand, so the token never goes there and the URL is checked first.
    const content = await fetch(`${share}/content`, {
      headers: auth,
      redirect: "manual",
      ...signal,
    }).catch(() => {
      throw new Error("could not reach Microsoft Graph");
    });
    if (content.status === 401 || content.status === 403) throw new FileRefused(NO_PERMISSION);
    if (content.status < 300 || content.status >= 400) {
      if (content.ok) return content;
      throw new Error(`Microsoft Graph refused the download (${content.status})`);
    }
    await content.body?.cancel();
    const location = content.headers.get("location") ?? "";
    if (!serviceUrlAllowed(location, this.#hosts))
      throw new FileRefused("Microsoft Graph sent it from a host that is not SharePoint/OneDrive");
    return fetch(location, { redirect: "error", ...signal }).catch(() => {
      throw new Error("could not reach SharePoint");
    });
  }

  /**
   * Upload `file` into a channel's files (its folder in the team's SharePoint
   * site, through Graph's simple upload; a name taken is renamed), and
   * answer its web URL: only the team's members can open it. Throws when
   * Graph refuses (no Files.ReadWrite.All, an unknown team).
   */
  async uploadToChannel(
    tenant: string,
    where: { team: string; channel: string },
    file: { name: string; mimeType: string; data: Buffer },
  ): Promise<string> {
    if (!GraphTokens.valid(tenant)) throw new Error("the channel's tenant is unknown");
    const auth = { authorization: `Bearer ${await this.#token(tenant)}` };
    const graph = this.#settings.graphUrl;
    const folderRes = await fetch(
      `${graph}/teams/${encodeURIComponent(where.team)}/channels/${encodeURIComponent(where.channel)}/filesFolder`,
      { headers: auth, redirect: "error", signal: AbortSignal.timeout(30_000) },
    );
    if (!folderRes.ok)
      throw new Error(`Microsoft Graph refused the channel's files folder (${folderRes.status})`);
    const folder = Folder.parse(await folderRes.json());
    const put = await fetch(
      `${graph}/drives/${encodeURIComponent(folder.parentReference.driveId)}/items/${encodeURIComponent(folder.id)}:/${encodeURIComponent(file.name)}:/content?@microsoft.graph.conflictBehavior=rename`,
      {
        method: "PUT",
        headers: { ...auth, "content-type": file.mimeType },
        body: new Uint8Array(file.data),
        redirect: "error",
        signal: AbortSignal.timeout(120_000),
      },
    );
    if (!put.ok) throw new Error(`Microsoft Graph refused the upload (${put.status})`);
    const { webUrl } = Uploaded.parse(await put.json());
    if (!serviceUrlAllowed(webUrl, this.#hosts))
      throw new Error("Microsoft Graph named a web URL off SharePoint");
    return webUrl;
  }

  async #token(tenant: string): Promise<string> {
    return this.#tokens.get(tenant).catch(() => {
      throw new FileRefused(NO_PERMISSION);
    });
  }
}
