import type { Readable } from "node:stream";
import { type Api, GrammyError, InputFile } from "grammy";
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
import { tgCall } from "./client.ts";

/** Photos Telegram shows as pictures (sendPhoto): at most 10 MB, these types. */
const PHOTO_TYPES = new Set(["image/jpeg", "image/png", "image/webp"]);
const MAX_PHOTO_BYTES = 10 * 1024 * 1024;

/**
 * Files on Telegram: an attachment (document, photo, voice, video, audio) is
 * found with getFile and downloaded from the Bot API's file URL, which holds
 * the bot token (so only the gateway ever sees it); a file the agent sends
 * goes out with sendPhoto (pictures) or sendDocument, multipart as grammY
 * sends an InputFile, into the same chat and forum topic.
 */
export class TelegramFiles implements PlatformFiles {
  readonly #api: Api;
  readonly #token: string;
  readonly #apiRoot: string;

  constructor(opts: { api: Api; token: string; apiRoot: string | undefined }) {
    this.#api = opts.api;
    this.#token = opts.token;
    this.#apiRoot = (opts.apiRoot ?? "https://api.telegram.org").replace(/\/+$/, "");
  }

  async download(
    _origin: Origin,
    file: InboundFile,
    opts: DownloadOptions,
  ): Promise<AsyncIterable<Uint8Array>> {
    if (!file.ref) throw new Error("the attachment has no file_id");
    const fileId = file.ref;
    const found = await tgCall(() => this.#api.getFile(fileId)).catch((err: unknown) => {
      // Bots may download files of up to 20 MB; Telegram says so for bigger ones.
      if (err instanceof GrammyError && /too big/i.test(err.description))
        throw new FileRefused("Telegram lets bots download files of at most 20 MB");
      throw err;
    });
    if (found.file_size !== undefined && found.file_size > opts.maxBytes)
      throw new FileTooLarge(opts.maxBytes);
    if (!found.file_path) throw new FileRefused("Telegram gave no way to download it");
    const path = found.file_path.split("/").map(encodeURIComponent).join("/");
    let res: Response;
    try {
      res = await fetch(`${this.#apiRoot}/file/bot${this.#token}/${path}`, {
        redirect: "error",
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    } catch {
      // The URL holds the bot token: no error that could quote it goes further.
      throw new Error("could not reach Telegram's file server");
    }
    if (!res.ok || !res.body) throw new Error(`Telegram refused the download (${res.status})`);
    return bounded(res.body as unknown as Readable & AsyncIterable<Uint8Array>, opts.maxBytes);
  }

  async upload(origin: Origin, file: OutboundFile): Promise<void> {
    const chatId = Number(origin.channelId);
    const other = {
      ...(file.caption ? { caption: file.caption.slice(0, 1024) } : {}),
      ...(origin.threadId ? { message_thread_id: Number(origin.threadId) } : {}),
    };
    const input = new InputFile(file.data, file.name);
    if (PHOTO_TYPES.has(file.mimeType) && file.data.length <= MAX_PHOTO_BYTES)
      await tgCall(() => this.#api.sendPhoto(chatId, input, other));
    else await tgCall(() => this.#api.sendDocument(chatId, input, other));
  }
}
