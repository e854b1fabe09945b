import { randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import type { Context } from "hono";
import { z } from "zod";
import {
  bounded,
  type DownloadOptions,
  FileRefused,
  FileTooLarge,
  type InboundFile,
  type OutboundFile,
  type PlatformFiles,
} from "../../domain/files.ts";
import type { Origin } from "../../domain/origin.ts";
import { readRecord } from "../../util/stored-record.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import { attachmentOf, card, openUrl, textBlock } from "./cards.ts";
import { type ConnectorClient, teamsCall } from "./client.ts";
import { serviceUrlAllowed } from "./config.ts";
import type { Conversations } from "./conversations.ts";

/** Pictures sent inline (base64 in the activity): Teams keeps a message under about 28 KB. */
const INLINE_IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif"]);
export const INLINE_IMAGE_MAX_BYTES = 20 * 1024;
/** How long a file's download link works. */
export const FILE_LINK_TTL_MS = 60 * 60_000;
/** Where a 1:1 file's pre-authenticated download URL may point (the person's OneDrive). */
const DOWNLOAD_HOSTS = [
  "*.sharepoint.com",
  "*.sharepoint.us",
  "*.sharepoint.de",
  "*.sharepoint.cn",
];

export const FILE_LINK_PATH = "/teams/files/:token/:name";
const linkKey = (token: string) => `file:${token}`;
const StoredFile = z.object({
  name: z.string(),
  mimeType: z.string(),
  data: z.string(),
});

/**
 * Files on Microsoft Teams. In: a file sent in a 1:1 chat arrives as
 * `file.download.info` with a pre-authenticated OneDrive download URL
 * (fetched without any token, only from SharePoint hosts or a service host);
 * an inline image as a `contentUrl` on the Bot Connector, fetched with the
 * bot's token, which goes only to the configured service hosts. Out: a small
 * picture inline (base64), anything else as a card with a download link to
 * the gateway: an unguessable URL that works for an hour, posted only into
 * the conversation the turn belongs to (the file consent card of the real
 * OneDrive flow needs the person's consent round trip and works in 1:1 only).
 */
export class TeamsFiles implements PlatformFiles {
  readonly #client: ConnectorClient;
  readonly #serviceHosts: readonly string[];
  readonly #deps: () => {
    state: AdapterContext["state"];
    publicUrl: string;
    conversations: Conversations;
  };

  constructor(opts: {
    client: ConnectorClient;
    serviceHosts: readonly string[];
    deps: () => { state: AdapterContext["state"]; publicUrl: string; conversations: Conversations };
  }) {
    this.#client = opts.client;
    this.#serviceHosts = opts.serviceHosts;
    this.#deps = opts.deps;
  }

  async download(
    _origin: Origin,
    file: InboundFile,
    opts: DownloadOptions,
  ): Promise<AsyncIterable<Uint8Array>> {
    const ref = file.ref ?? "";
    let res: Response;
    if (ref.startsWith("bot:")) {
      const url = ref.slice(4);
      if (!serviceUrlAllowed(url, this.#serviceHosts))
        throw new FileRefused("its URL is not on a Teams service host");
      res = await this.#client.download(url, opts.signal).catch(() => {
        throw new Error("could not reach Teams");
      });
    } else if (ref.startsWith("download:")) {
      const url = ref.slice(9);
      if (!serviceUrlAllowed(url, [...DOWNLOAD_HOSTS, ...this.#serviceHosts]))
        throw new FileRefused("its download URL is not on OneDrive/SharePoint");
      res = await fetch(url, {
        redirect: "error",
        ...(opts.signal ? { signal: opts.signal } : {}),
      }).catch(() => {
        throw new Error("could not reach OneDrive");
      });
    } else {
      throw new FileRefused(
        "Teams shares files in channels and group chats through SharePoint, which the bot cannot open; send it in your 1:1 chat with the bot",
      );
    }
    if (!res.ok || !res.body) throw new Error(`Teams refused the download (${res.status})`);
    const length = Number(res.headers.get("content-length") ?? Number.NaN);
    if (length > opts.maxBytes) {
      await res.body.cancel();
      throw new FileTooLarge(opts.maxBytes);
    }
    return bounded(res.body as unknown as Readable & AsyncIterable<Uint8Array>, opts.maxBytes);
  }

  async upload(origin: Origin, file: OutboundFile): Promise<void> {
    const { state, publicUrl, conversations } = this.#deps();
    const ref = await conversations.get(origin.channelId);
    const caption = file.caption ?? "";
    const reply = origin.messageRef ? { replyToId: origin.messageRef } : {};
    if (INLINE_IMAGE_TYPES.has(file.mimeType) && file.data.length <= INLINE_IMAGE_MAX_BYTES) {
      const contentUrl = `data:${file.mimeType};base64,${file.data.toString("base64")}`;
      await teamsCall(() =>
        this.#client.send(ref.serviceUrl, origin.channelId, {
          type: "message",
          ...(caption ? { text: caption, textFormat: "plain" } : {}),
          attachments: [{ contentType: file.mimeType, contentUrl, name: file.name }],
          ...reply,
        }),
      );
      return;
    }
    const token = randomBytes(32).toString("base64url");
    const stored = { name: file.name, mimeType: file.mimeType, data: file.data.toString("base64") };
    await state.set(linkKey(token), JSON.stringify(stored), FILE_LINK_TTL_MS);
    const url = `${publicUrl.replace(/\/+$/, "")}/teams/files/${token}/${encodeURIComponent(file.name)}`;
    const content = card(
      [
        textBlock(`📎 ${file.name} (${file.mimeType}, ${file.data.length} bytes)`, {
          weight: "Bolder",
        }),
        textBlock("The download link works for an hour.", { isSubtle: true }),
      ],
      [openUrl(`Download ${file.name}`, url)],
    );
    await teamsCall(() =>
      this.#client.send(ref.serviceUrl, origin.channelId, {
        type: "message",
        ...(caption ? { text: caption, textFormat: "plain" } : {}),
        attachments: [attachmentOf(content)],
        ...reply,
      }),
    );
  }
}

/**
 * GET /teams/files/<token>/<name>: a file the agent sent, for the hour its
 * link works. Served as a download (never rendered on the gateway's origin).
 */
export function fileLinkRoute(ctx: Pick<AdapterContext, "routes" | "state" | "log">): void {
  ctx.routes.get(FILE_LINK_PATH, async (c: Context) => {
    const token = c.req.param("token") ?? "";
    if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return c.text("No such file.", 404);
    const raw = await ctx.state.get(linkKey(token));
    const file = raw
      ? readRecord(StoredFile, raw, { record: "teams file link", key: "file:…" }, ctx.log)
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
