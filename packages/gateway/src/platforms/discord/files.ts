import type { Readable } from "node:stream";
import type { API } from "@discordjs/core";
import { DiscordAPIError } from "@discordjs/rest";
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
import { dcCall } from "./client.ts";
import { MESSAGE_LIMIT } from "./format.ts";

/** Discord's CDN hosts: attachments are fetched from these alone. */
const CDN_HOSTS = new Set(["cdn.discordapp.com", "media.discordapp.net"]);

/**
 * Files on Discord: a message's attachments are served by Discord's CDN at
 * signed, expiring URLs that need no token. The URL comes in the Gateway's
 * MESSAGE_CREATE, but the gateway still fetches only from Discord's CDN
 * hosts (or the configured API root's host, an emulator or proxy), so a
 * crafted message cannot make it fetch an internal address (SSRF), and
 * never follows a redirect. A file the agent sends is attached to a new
 * message (multipart `files[0]`), the caption as its content.
 */
export class DiscordFiles implements PlatformFiles {
  readonly #api: () => API;
  readonly #apiOrigin: string;

  constructor(api: () => API, apiRoot: string) {
    this.#api = api;
    this.#apiOrigin = new URL(apiRoot).origin;
  }

  async download(
    _origin: Origin,
    file: InboundFile,
    opts: DownloadOptions,
  ): Promise<AsyncIterable<Uint8Array>> {
    const url = URL.parse(file.ref ?? "");
    if (!url || !this.#isCdn(url))
      throw new FileRefused("its URL is not on Discord's CDN (cdn.discordapp.com)");
    let res: Response;
    try {
      res = await fetch(url, {
        redirect: "error",
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    } catch {
      throw new Error("could not reach Discord's CDN");
    }
    if (!res.ok || !res.body)
      throw new FileRefused(`Discord's CDN refused the download (${res.status}); send it again`);
    const length = Number(res.headers.get("content-length") ?? Number.NaN);
    if (length > opts.maxBytes) {
      await res.body.cancel();
      throw new FileTooLarge(opts.maxBytes);
    }
    return bounded(res.body as unknown as Readable & AsyncIterable<Uint8Array>, opts.maxBytes);
  }

  async upload(origin: Origin, file: OutboundFile): Promise<void> {
    await dcCall(() =>
      this.#api().channels.createMessage(origin.channelId, {
        content: (file.caption ?? "").slice(0, MESSAGE_LIMIT),
        allowed_mentions: { parse: [] },
        files: [{ name: file.name, data: file.data, contentType: file.mimeType }],
      }),
    ).catch((err: unknown) => {
      // 40005 "Request entity too large": the server's upload limit (10 MiB without boosts).
      if (err instanceof DiscordAPIError && err.status === 413)
        throw new Error(
          "Discord refused the file: it is larger than this server's upload limit (10 MiB without boosts); send a smaller file",
        );
      throw err;
    });
  }

  #isCdn(url: URL): boolean {
    if (url.origin === this.#apiOrigin) return true;
    return url.protocol === "https:" && CDN_HOSTS.has(url.hostname);
  }
}
