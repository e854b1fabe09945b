import type { Readable } from "node:stream";
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
import { type GraphClient, waCall } from "./client.ts";
import { documentMessage, imageMessage } from "./payloads.ts";
import type { WindowedSender } from "./sender.ts";

/** Where the Cloud API serves a person's media (besides the configured API root). */
const MEDIA_HOSTS = new Set(["lookaside.fbsbx.com"]);
/** Pictures WhatsApp shows as images: JPEG and PNG, at most 5 MB; anything else goes as a document. */
const IMAGE_TYPES = new Set(["image/jpeg", "image/png"]);
const MAX_IMAGE_BYTES = 5 * 1024 * 1024;
/** The Cloud API takes documents of at most 100 MB. */
const MAX_DOCUMENT_BYTES = 100 * 1024 * 1024;

/**
 * Files on WhatsApp (Cloud API): a person's image, document, audio, video or
 * sticker is looked up with GET /<media-id> (its URL lives five minutes) and
 * downloaded from that URL with the access token, which goes only to Graph's
 * own media hosts; a file the agent sends is uploaded to
 * /<phone-number-id>/media and sent as an image (JPEG/PNG up to 5 MB) or a
 * document, inside the 24-hour window like any reply.
 */
export class WhatsAppFiles implements PlatformFiles {
  readonly #graph: GraphClient;
  readonly #apiOrigin: string;
  readonly #sender: (to: string) => WindowedSender;

  constructor(opts: {
    graph: GraphClient;
    apiRoot: string;
    sender: (to: string) => WindowedSender;
  }) {
    this.#graph = opts.graph;
    this.#apiOrigin = new URL(opts.apiRoot).origin;
    this.#sender = opts.sender;
  }

  async download(
    _origin: Origin,
    file: InboundFile,
    opts: DownloadOptions,
  ): Promise<AsyncIterable<Uint8Array>> {
    if (!file.ref) throw new Error("the attachment has no media id");
    const mediaId = file.ref;
    const info = await waCall(() => this.#graph.mediaInfo(mediaId));
    if (info.file_size !== undefined && info.file_size > opts.maxBytes)
      throw new FileTooLarge(opts.maxBytes);
    const url = URL.parse(info.url);
    // Graph named the URL, but the token must still go to Graph's hosts alone.
    if (!url || !this.#isMediaHost(url))
      throw new FileRefused("WhatsApp named a download address that is not its own");
    let res: Response;
    try {
      res = await this.#graph.downloadMedia(url, opts.signal);
    } catch {
      throw new Error("could not reach WhatsApp's media server");
    }
    if (!res.ok || !res.body) throw new Error(`WhatsApp refused the download (${res.status})`);
    const length = Number(res.headers.get("content-length") ?? Number.NaN);
    if (length > opts.maxBytes) {
      await res.body.cancel();
      throw new FileTooLarge(opts.maxBytes);
    }
    return bounded(res.body as unknown as Readable & AsyncIterable<Uint8Array>, opts.maxBytes);
  }

  async upload(origin: Origin, file: OutboundFile): Promise<void> {
    if (file.data.length > MAX_DOCUMENT_BYTES)
      throw new Error("WhatsApp takes documents of at most 100 MB");
    const image = IMAGE_TYPES.has(file.mimeType) && file.data.length <= MAX_IMAGE_BYTES;
    const mediaId = await waCall(() =>
      this.#graph.uploadMedia({
        data: file.data,
        filename: file.name,
        mimeType: file.mimeType || "application/octet-stream",
      }),
    );
    // Every WhatsApp chat is the person's own: the origin's user is the recipient.
    const to = origin.userId;
    const caption = file.caption ?? "";
    const outcome = await this.#sender(to).send(
      image ? imageMessage(to, mediaId, caption) : documentMessage(to, mediaId, file.name, caption),
    );
    if (!outcome.sent)
      throw new Error(
        "not sent: the person's last message is more than 24 hours old (WhatsApp then accepts only templates)",
      );
  }

  #isMediaHost(url: URL): boolean {
    if (url.origin === this.#apiOrigin) return true;
    return url.protocol === "https:" && MEDIA_HOSTS.has(url.hostname);
  }
}
