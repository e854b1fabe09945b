import { z } from "zod";
import type { Origin } from "./origin.ts";

/**
 * Files in and out of a conversation (docs/files.md). A platform that can
 * carry files gives its ReplySurface a `files` capability; the runtime
 * downloads attachments with it into the sandbox at turn time, and posts the
 * files the agent sends (`send_file`) with it. A platform without it still
 * takes messages; their attachments are refused with a message.
 */

/** A file attached to a message, as the platform (or a REST upload) described it; not fetched yet. */
export const InboundFile = z.object({
  /** The name the person gave it (sanitized only when written into the sandbox). */
  name: z.string().max(2000),
  mimeType: z.string().max(255).optional(),
  /** What the platform said the size is; checked again while downloading. */
  size: z.number().int().nonnegative().optional(),
  /** How the platform's adapter finds it (Slack `url_private_download`, a Telegram `file_id`). */
  ref: z.string().max(8000).optional(),
  /** A REST upload: the id it is staged under in the store until its turn. */
  upload: z.string().max(100).optional(),
});
export type InboundFile = z.infer<typeof InboundFile>;

/** A file the agent sends into its conversation. */
export interface OutboundFile {
  name: string;
  mimeType: string;
  data: Buffer;
  caption?: string;
}

/** Options of one download. */
export interface DownloadOptions {
  /** A body longer than this fails the download (FileTooLarge), read no further. */
  maxBytes: number;
  signal?: AbortSignal;
}

/** A platform's file capability (optional on a ReplySurface: callers check it exists). */
export interface PlatformFiles {
  /**
   * The attachment's bytes, fetched with the platform's own credentials (the
   * sandbox never holds them). The stream is bounded by `maxBytes`.
   */
  download(
    origin: Origin,
    file: InboundFile,
    opts: DownloadOptions,
  ): Promise<AsyncIterable<Uint8Array>>;
  /** Post the file natively into the origin's thread (with its caption). */
  upload(origin: Origin, file: OutboundFile): Promise<void>;
}

/**
 * A file the platform (or the gateway) will not hand over, for a reason the
 * person may read (a missing scope, the platform's own size limit); other
 * failures are reported as "could not be fetched" and logged.
 */
export class FileRefused extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "FileRefused";
  }
}

/** A download or upload over the size limit. */
export class FileTooLarge extends Error {
  readonly maxBytes: number;
  constructor(maxBytes: number) {
    super(`the file is larger than ${maxBytes} bytes`);
    this.name = "FileTooLarge";
    this.maxBytes = maxBytes;
  }
}

/**
 * A body read to at most `maxBytes`: the platform's size is not trusted, the
 * download fails the moment it passes the limit.
 */
export async function* bounded(
  body: AsyncIterable<Uint8Array>,
  maxBytes: number,
): AsyncIterable<Uint8Array> {
  let seen = 0;
  for await (const chunk of body) {
    seen += chunk.byteLength;
    if (seen > maxBytes) throw new FileTooLarge(maxBytes);
    yield chunk;
  }
}
