import { newId } from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import { Origin } from "../domain/origin.ts";
import type { KeyValue } from "../store/port.ts";
import { readRecord } from "../util/stored-record.ts";

/**
 * Files held in the store for a while, so every gateway sharing it finds them:
 * REST uploads (staged until their turn writes them into the sandbox) and the
 * files an agent sent a REST client (until downloaded, for `download_ttl`).
 * Each names the origin of its message: only who may read that message may
 * read the file (api/files.ts).
 */
export const FileBlob = z.object({
  id: z.string().min(1),
  kind: z.enum(["upload", "sent"]),
  origin: Origin,
  /** The conversation a sent file came from (uploads are bound to their origin instead). */
  conversationId: z.string().optional(),
  messageId: z.string().optional(),
  name: z.string(),
  mimeType: z.string(),
  size: z.number().int().nonnegative(),
  createdAt: z.number(),
  /** The bytes, base64. */
  data: z.string(),
});
export type FileBlob = z.infer<typeof FileBlob>;

const blobKey = (id: string) => `fileblob:${id}`;

export class FileBlobs {
  readonly #kv: KeyValue;
  readonly #log: Logger;

  constructor(deps: { kv: KeyValue; log: Logger }) {
    this.#kv = deps.kv;
    this.#log = deps.log;
  }

  /** Keep `data` for `ttlMs`; returns its id (unguessable: it is half of a download's authority). */
  async put(
    fields: Omit<FileBlob, "id" | "createdAt" | "data" | "size">,
    data: Buffer,
    ttlMs: number,
  ): Promise<string> {
    const id = newId(fields.kind === "upload" ? "upl" : "file");
    const blob: FileBlob = {
      ...fields,
      id,
      size: data.length,
      createdAt: Date.now(),
      data: data.toString("base64"),
    };
    await this.#kv.set(blobKey(id), JSON.stringify(blob), { ttlMs });
    return id;
  }

  async get(id: string): Promise<(Omit<FileBlob, "data"> & { data: Buffer }) | undefined> {
    const raw = await this.#kv.get(blobKey(id));
    if (raw === null) return undefined;
    const blob = readRecord(
      FileBlob,
      raw,
      { record: "file", key: blobKey(id) },
      this.#log,
      "reads as absent",
    );
    return blob ? { ...blob, data: Buffer.from(blob.data, "base64") } : undefined;
  }

  async delete(id: string): Promise<void> {
    await this.#kv.del(blobKey(id));
  }
}
