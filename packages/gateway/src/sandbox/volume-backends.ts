import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { errorMessage, type Logger } from "@lobu/core";
import { runOk } from "./commands.ts";
import { checkSandboxId } from "./env.ts";

/**
 * Where a sandbox's volume lives between runs, so that whichever gateway runs
 * it next finds its workspace (and the agent's transcript in it):
 *
 * - `local`: the volume directory under the data dir; nothing to move.
 * - `shared`: the volume directory on a filesystem every gateway mounts;
 *   nothing to move either (placement keeps one gateway on it at a time).
 * - `s3`: each gateway keeps a working copy under its data dir; when the
 *   sandbox stops, and after each turn while it runs, the copy is saved as one
 *   object (a conditional write on the object the copy was made from), and a
 *   gateway starting the sandbox fetches it first unless its copy is that object
 *   already. A gateway that dies loses at most its turn in flight.
 */
export interface VolumeBackend {
  readonly name: "local" | "shared" | "s3";
  /** Bring the volume at `volumeDir` up to date before the sandbox starts here. */
  fetch(id: string, volumeDir: string): Promise<void>;
  /**
   * Save the volume where every gateway finds it (the sandbox stopped here, or is
   * quiet between turns). Throws VolumeSaveFenced when another gateway saved since.
   */
  persist(id: string, volumeDir: string): Promise<void>;
  /** Forget the saved volume (the sandbox is erased). */
  remove(id: string): Promise<void>;
}

/** `local` and `shared`: the volume directory is where the volume lives. */
export function directoryVolumes(name: "local" | "shared"): VolumeBackend {
  return { name, fetch: async () => {}, persist: async () => {}, remove: async () => {} };
}

export interface S3VolumesOptions {
  client: S3Client;
  bucket: string;
  /** Key prefix (e.g. `lobu/`); objects are `<prefix>volumes/<sandbox id>.tar`. */
  prefix: string;
  /** This gateway's own directory for archives in transit and what its copies are. */
  stateDir: string;
  log: Logger;
}

/** A save refused because another gateway saved the volume since this copy was made. */
export class VolumeSaveFenced extends Error {
  constructor(id: string) {
    super(`volume ${id} was saved by another gateway since this copy was made`);
    this.name = "VolumeSaveFenced";
  }
}

function isPreconditionFailed(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === "PreconditionFailed" || e.$metadata?.httpStatusCode === 412;
}

/** Top-level volume entries never saved: scratch space and filesystem bookkeeping. */
const SKIP = ["./.tmp", "./lost+found"];

/** Volumes saved as tar archives in an S3-compatible bucket. */
export class S3Volumes implements VolumeBackend {
  readonly name = "s3";
  readonly #opts: S3VolumesOptions;

  constructor(opts: S3VolumesOptions) {
    this.#opts = opts;
  }

  #key(id: string): string {
    checkSandboxId(id);
    return `${this.#opts.prefix}volumes/${id}.tar`;
  }

  /** The ETag of the object this gateway's copy was made from (or saved as). */
  #copyFile(id: string): string {
    return join(this.#opts.stateDir, `${id}.etag`);
  }

  async #etagOfCopy(id: string): Promise<string | undefined> {
    return readFile(this.#copyFile(id), "utf8").catch(() => undefined);
  }

  async fetch(id: string, volumeDir: string): Promise<void> {
    const { client, bucket, stateDir } = this.#opts;
    const key = this.#key(id);
    let etag: string | undefined;
    try {
      etag = (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ETag;
    } catch (err) {
      if ((err as { name?: string }).name !== "NotFound") throw err;
      // Never saved (or erased): a new volume, whose first save must create the object.
      await rm(this.#copyFile(id), { force: true });
      return;
    }
    if (etag && etag === (await this.#etagOfCopy(id))) return; // this copy is the saved one
    const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const bytes = await got.Body?.transformToByteArray();
    if (!bytes) throw new Error(`volume ${id}: the stored archive has no body`);
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const archive = join(stateDir, `${id}.in.tar`);
    await writeFile(archive, bytes, { mode: 0o600 });
    try {
      await rm(volumeDir, { recursive: true, force: true });
      await mkdir(volumeDir, { recursive: true });
      // GNU tar refuses absolute and `..` members and sets symlinks last, so a
      // crafted workspace cannot write outside the volume.
      await runOk("tar", ["-xpf", archive, "-C", volumeDir], { timeoutMs: 600_000 });
    } finally {
      await rm(archive, { force: true });
    }
    await writeFile(this.#copyFile(id), got.ETag ?? etag ?? "", { mode: 0o600 });
    this.#opts.log.info({ sandboxId: id, bytes: bytes.length }, "volume fetched from S3");
  }

  async persist(id: string, volumeDir: string): Promise<void> {
    const { client, bucket, stateDir } = this.#opts;
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const archive = join(stateDir, `${id}.out.tar`);
    try {
      await runOk(
        "tar",
        ["-cf", archive, ...SKIP.map((s) => `--exclude=${s}`), "-C", volumeDir, "."],
        { timeoutMs: 600_000 },
      );
      const body = await readFile(archive);
      // Fenced by a conditional write: it replaces only the object this copy was made from
      // (or creates it when there was none), so a gateway that lost the sandbox, saving late,
      // cannot overwrite what the gateway running it now saved.
      const base = await this.#etagOfCopy(id);
      const put = await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: this.#key(id),
          Body: body,
          ...(base ? { IfMatch: base } : { IfNoneMatch: "*" }),
        }),
      );
      await writeFile(this.#copyFile(id), put.ETag ?? "", { mode: 0o600 });
      this.#opts.log.debug({ sandboxId: id, bytes: body.length }, "volume saved to S3");
    } catch (err) {
      if (isPreconditionFailed(err)) {
        this.#opts.log.warn(
          { sandboxId: id },
          "volume not saved: another gateway saved it since this copy was made",
        );
        throw new VolumeSaveFenced(id);
      }
      // Its next start elsewhere continues from the previous saved state.
      this.#opts.log.error({ sandboxId: id, err: errorMessage(err) }, "volume not saved to S3");
      throw err;
    } finally {
      await rm(archive, { force: true });
    }
  }

  async remove(id: string): Promise<void> {
    const { client, bucket } = this.#opts;
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: this.#key(id) }));
    await rm(this.#copyFile(id), { force: true });
  }
}
