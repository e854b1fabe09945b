import {
  type FilesSection,
  isLobuError,
  MAX_TURN_IMAGE_BYTES,
  MAX_TURN_IMAGES_TOTAL_BYTES,
  TurnImage,
} from "@lobu/core";
import type { Logger } from "pino";
import type { FileBlobs } from "../conversations/file-blobs.ts";
import { mimeTypeOf, typeAllowed } from "../domain/file-types.ts";
import {
  FileRefused,
  FileTooLarge,
  type InboundFile,
  type PlatformFiles,
} from "../domain/files.ts";
import type { Origin } from "../domain/origin.ts";
import type { QueuedTurn } from "../domain/turns.ts";
import { SANDBOX_WORKSPACE } from "../sandbox/bwrap.ts";
import {
  bytesUnder,
  mib,
  readFromVolume,
  safeFileName,
  type WrittenFile,
  writeIntoVolume,
} from "../sandbox/volume-files.ts";

/** The folder of the workspace attachments are written into, one subfolder per day. */
export const INBOX_DIR = "inbox";

export interface FilesInDeps {
  limits: Pick<
    FilesSection,
    | "max_file_mb"
    | "max_conversation_mb"
    | "max_files_per_message"
    | "allowed_types"
    | "images_to_model"
  >;
  /** The host folder of a sandbox's volume (its /workspace). */
  volumeDir(sandboxId: string): string;
  /** Where REST uploads wait for their turn. */
  blobs: Pick<FileBlobs, "get">;
  /** The platform's file capability, if it has one (its ReplySurface's `files`). */
  filesFor(platform: string): PlatformFiles | undefined;
  log: Logger;
}

/** What a turn's attachments came to. */
export interface ReceivedFiles {
  /** Appended to the message for the agent: each file's path, name, type and size. */
  note: string;
  /** Pictures for the model (when it takes images). */
  images: TurnImage[];
  /** One line per refused file, for the person (shown in the thread). */
  refusals: string[];
  /** The files written, relative to the volume (pushed into sandboxes that do not mount it). */
  paths?: string[];
}

const MiB = 1024 * 1024;

/**
 * Attachments in (docs/files.md): at turn time, with the sandbox awake, each
 * file is fetched with the platform's credentials (or taken from its staged
 * REST upload), checked against the limits and types, and written atomically
 * into `~/inbox/<date>/` (sandbox/volume-files.ts). A file that is refused or
 * fails is named in `refusals`; the message is still answered.
 */
export class FilesIn {
  readonly #deps: FilesInDeps;

  constructor(deps: FilesInDeps) {
    this.#deps = deps;
  }

  async receive(turn: QueuedTurn, model: { images?: boolean }): Promise<ReceivedFiles> {
    const files = turn.files ?? [];
    const { limits } = this.#deps;
    const volumeDir = this.#deps.volumeDir(turn.conversationId);
    const day = new Date(turn.receivedAt).toISOString().slice(0, 10);
    const saved: (WrittenFile & { mimeType: string; original: string })[] = [];
    const refusals: string[] = [];
    let used = await bytesUnder(volumeDir, INBOX_DIR);
    for (const [i, file] of files.entries()) {
      const mimeType = mimeTypeOf(file);
      // Names are shown cleaned: a newline in one must not forge a line of the note.
      const shown = safeFileName(file.name);
      const refuse = (why: string) => refusals.push(`${shown}: ${why}`);
      if (i >= limits.max_files_per_message) {
        refuse(`not saved: a message carries at most ${limits.max_files_per_message} files`);
        continue;
      }
      if (!typeAllowed(mimeType, limits.allowed_types)) {
        refuse(
          `not saved: files of type ${mimeType} are not accepted here (allowed: ${limits.allowed_types.join(", ")})`,
        );
        continue;
      }
      const room = limits.max_conversation_mb * MiB - used;
      const maxBytes = Math.min(limits.max_file_mb * MiB, room);
      const tooLarge = () =>
        room < limits.max_file_mb * MiB
          ? `not saved: this conversation's inbox is full (${mib(used)} of ${limits.max_conversation_mb} MiB); ask the agent to delete files in ~/${INBOX_DIR} it no longer needs`
          : `not saved: it is larger than the ${limits.max_file_mb} MiB limit for a file`;
      if (maxBytes <= 0 || (file.size !== undefined && file.size > maxBytes)) {
        refuse(tooLarge());
        continue;
      }
      try {
        const written = await writeIntoVolume({
          volumeDir,
          dirs: [INBOX_DIR, day],
          name: file.name,
          body: await this.#body(turn, file, maxBytes),
          maxBytes,
          log: this.#deps.log,
        });
        used += written.size;
        saved.push({ ...written, mimeType, original: shown });
      } catch (err) {
        if (err instanceof FileTooLarge) refuse(tooLarge());
        else if (err instanceof FileRefused || isLobuError(err))
          refuse(`not saved: ${err.message}`);
        else {
          this.#deps.log.warn(
            { err, sandboxId: turn.conversationId, platform: turn.origin.platform },
            "an attachment could not be fetched into the sandbox",
          );
          refuse("not saved: it could not be fetched from the platform; send it again");
        }
      }
    }
    const images =
      limits.images_to_model && model.images ? await this.#images(volumeDir, saved) : [];
    return { note: noteFor(saved, refusals), images, refusals, paths: saved.map((f) => f.rel) };
  }

  async #body(
    turn: QueuedTurn,
    file: InboundFile,
    maxBytes: number,
  ): Promise<AsyncIterable<Uint8Array>> {
    if (file.upload) {
      const blob = await this.#deps.blobs.get(file.upload);
      // Only a turn of the person who uploaded it, where they uploaded it, takes an upload in.
      if (blob?.kind !== "upload" || !sameSender(blob.origin, turn.origin))
        throw new FileRefused("the upload is gone (it expired); send it again");
      return (async function* () {
        yield new Uint8Array(blob.data);
      })();
    }
    const platform = this.#deps.filesFor(turn.origin.platform);
    if (!platform)
      throw new FileRefused(`files from ${turn.origin.platform} are not taken in on this gateway`);
    return platform.download(turn.origin, file, { maxBytes });
  }

  /** The saved pictures the model can take, read back from the volume, within the turn's bounds. */
  async #images(
    volumeDir: string,
    saved: (WrittenFile & { mimeType: string })[],
  ): Promise<TurnImage[]> {
    const images: TurnImage[] = [];
    let total = 0;
    for (const f of saved) {
      const mimeType = TurnImage.shape.mimeType.safeParse(f.mimeType);
      if (!mimeType.success || f.size > MAX_TURN_IMAGE_BYTES) continue;
      if (total + f.size > MAX_TURN_IMAGES_TOTAL_BYTES) break;
      const data = await readFromVolume(volumeDir, f.rel.split("/"), MAX_TURN_IMAGE_BYTES).catch(
        () => undefined,
      );
      if (!data) continue;
      total += data.length;
      images.push({ mimeType: mimeType.data, data: data.toString("base64") });
    }
    return images;
  }
}

function sameSender(a: Origin, b: Origin): boolean {
  return (
    a.platform === b.platform &&
    (a.workspace ?? "") === (b.workspace ?? "") &&
    a.userId === b.userId &&
    a.channelId === b.channelId
  );
}

/** What the agent is told about the attachments. */
function noteFor(
  saved: (WrittenFile & { mimeType: string; original: string })[],
  refusals: string[],
): string {
  const lines: string[] = [];
  if (saved.length) {
    lines.push("[Files attached to this message, saved in your workspace:");
    for (const f of saved)
      lines.push(
        `- ${SANDBOX_WORKSPACE}/${f.rel} (name: ${f.original}, type: ${f.mimeType}, size: ${mib(f.size)})`,
      );
    lines.push("]");
  }
  if (refusals.length) {
    lines.push("[Attachments that were not saved (the person has been told):");
    for (const r of refusals) lines.push(`- ${r}`);
    lines.push("]");
  }
  return lines.join("\n");
}
