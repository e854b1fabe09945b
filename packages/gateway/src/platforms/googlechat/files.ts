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
import type { AdapterContext } from "../shared/adapter.ts";
import { storeFileLink } from "../shared/file-links.ts";
import { linkCard } from "./cards.ts";
import { type ChatApi, gcCall } from "./client.ts";
import { MESSAGE_LIMIT } from "./format.ts";

/** An attachment's `attachmentDataRef.resourceName`: an opaque token, never a URL or a path. */
const RESOURCE_NAME = /^[A-Za-z0-9_.=+/-]{1,2000}$/;

/**
 * Files on Google Chat. In: a file a person uploads arrives as an attachment
 * whose `attachmentDataRef.resourceName` the app downloads with
 * `media.download` as its service account (app authentication), from the
 * Chat API alone: the event names a resource, never a URL, so nothing in a
 * message can point the gateway elsewhere. Drive files (`driveDataRef`)
 * need the person's Drive permission and are refused with a note. Out:
 * `media.upload` takes user authentication only (an app's service account
 * is refused), so a file the agent sends is a message with a **Download**
 * button: an hour-long unguessable link to the gateway (shared/file-links.ts),
 * posted only into the turn's space and thread.
 */
export class GoogleChatFiles implements PlatformFiles {
  readonly #api: ChatApi;
  readonly #deps: () => { state: AdapterContext["state"]; publicUrl: string };

  constructor(api: ChatApi, deps: () => { state: AdapterContext["state"]; publicUrl: string }) {
    this.#api = api;
    this.#deps = deps;
  }

  async download(
    _origin: Origin,
    file: InboundFile,
    opts: DownloadOptions,
  ): Promise<AsyncIterable<Uint8Array>> {
    const ref = file.ref ?? "";
    if (!ref)
      throw new FileRefused(
        "it is a Google Drive file, which the app cannot open; upload the file itself instead",
      );
    if (!RESOURCE_NAME.test(ref) || ref.includes(".."))
      throw new FileRefused("its attachment reference is not one Google Chat gives");
    const res = await gcCall(() =>
      this.#api.media.download(
        { resourceName: ref, alt: "media" },
        { responseType: "stream", ...(opts.signal ? { signal: opts.signal } : {}) },
      ),
    ).catch((err: unknown) => {
      const status = (err as { response?: { status?: number } }).response?.status;
      throw status === 404
        ? new FileRefused("Google Chat no longer has it; send it again")
        : new Error("could not download the file from Google Chat");
    });
    const body = res.data as unknown as Readable & AsyncIterable<Uint8Array>;
    const length = Number(headerOf(res.headers, "content-length") ?? Number.NaN);
    if (length > opts.maxBytes) {
      body.destroy();
      throw new FileTooLarge(opts.maxBytes);
    }
    return bounded(body, opts.maxBytes);
  }

  async upload(origin: Origin, file: OutboundFile): Promise<void> {
    const { state, publicUrl } = this.#deps();
    const url = await storeFileLink(state, publicUrl, "googlechat", file);
    const caption = file.caption ? `${file.caption}\n\n` : "";
    const text = `${caption}📎 ${file.name} (${file.mimeType}, ${file.data.length} bytes). The download link works for an hour.`;
    const thread = origin.threadId;
    await gcCall(() =>
      this.#api.spaces.messages.create({
        parent: origin.channelId,
        ...(thread ? { messageReplyOption: "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD" } : {}),
        requestBody: {
          text: text.slice(0, MESSAGE_LIMIT),
          cardsV2: linkCard("lobu-file", `Download ${file.name}`.slice(0, 80), url),
          ...(thread ? { thread: { name: thread } } : {}),
        },
      }),
    );
  }
}

function headerOf(headers: unknown, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const value = (headers as Record<string, unknown> | undefined)?.[name];
  return typeof value === "string" ? value : undefined;
}
