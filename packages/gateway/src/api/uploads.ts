import { type FilesSection, LobuError } from "@lobu/core";
import type { Context } from "hono";
import type { ZodType, z } from "zod";
import type { FileBlobs } from "../conversations/file-blobs.ts";
import { mimeTypeOf, typeAllowed } from "../domain/file-types.ts";
import type { InboundFile } from "../domain/files.ts";
import type { Origin } from "../domain/origin.ts";

const MiB = 1024 * 1024;

/** A message sent as `multipart/form-data`: its fields and files (the `file` parts). */
export function isMultipart(c: Context): boolean {
  return (c.req.header("content-type") ?? "").toLowerCase().startsWith("multipart/form-data");
}

/**
 * The largest multipart message body: every file at its limit, plus room for
 * the fields. The body is bounded while read (http/body-limit.ts).
 */
export function uploadBodyLimit(
  limits: Pick<FilesSection, "max_file_mb" | "max_files_per_message">,
) {
  return limits.max_file_mb * MiB * limits.max_files_per_message + MiB;
}

/** Read a multipart message: the fields checked with `schema`, the files checked against the limits. */
export async function multipartMessage<T extends ZodType>(
  c: Context,
  schema: T,
  limits: Pick<FilesSection, "max_file_mb" | "max_files_per_message" | "allowed_types">,
): Promise<{ body: z.infer<T>; files: File[] }> {
  let form: FormData;
  try {
    form = await c.req.formData();
  } catch (err) {
    if ((err as { status?: number }).status === 413) throw err;
    throw new LobuError("invalid_request", "the multipart body cannot be read", {
      hint: "Send multipart/form-data with text fields (user, channel, text, userName) and file parts named file.",
    });
  }
  const fields: Record<string, string> = {};
  const files: File[] = [];
  for (const [name, value] of form.entries()) {
    if (typeof value === "string") fields[name] = value;
    else if (name === "file") files.push(value);
    else
      throw new LobuError("invalid_request", `unexpected file part "${name.slice(0, 50)}"`, {
        hint: 'Name every file part "file".',
      });
  }
  const parsed = schema.safeParse({ text: "", ...fields });
  if (!parsed.success)
    throw new LobuError("invalid_request", "the message's fields do not match the schema", {
      details: {
        issues: parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
      },
      hint: "See docs/openapi.yaml for the request format.",
    });
  if (files.length > limits.max_files_per_message)
    throw new LobuError(
      "too_many_files",
      `${files.length} files; a message carries at most ${limits.max_files_per_message}`,
      { status: 413, hint: "Send the rest in another message." },
    );
  for (const f of files) {
    if (f.size > limits.max_file_mb * MiB)
      throw new LobuError(
        "file_too_large",
        `${f.name.slice(0, 200)} is larger than the ${limits.max_file_mb} MiB limit for a file`,
        { status: 413, hint: "Send a smaller file (compress it, or split it)." },
      );
    const type = mimeTypeOf({ name: f.name, mimeType: f.type });
    if (!typeAllowed(type, limits.allowed_types))
      throw new LobuError("file_type_refused", `files of type ${type} are not accepted here`, {
        status: 415,
        hint: `Allowed types: ${limits.allowed_types.join(", ")}.`,
      });
  }
  return { body: parsed.data, files };
}

/** Keep each upload in the store until its turn takes it into the sandbox. */
export async function stageUploads(
  blobs: Pick<FileBlobs, "put">,
  origin: Origin,
  files: File[],
  ttlMs: number,
): Promise<InboundFile[]> {
  const staged: InboundFile[] = [];
  for (const f of files) {
    const mimeType = mimeTypeOf({ name: f.name, mimeType: f.type });
    const data = Buffer.from(await f.arrayBuffer());
    const upload = await blobs.put({ kind: "upload", origin, name: f.name, mimeType }, data, ttlMs);
    staged.push({ name: f.name || "file", mimeType, size: data.length, upload });
  }
  return staged;
}
