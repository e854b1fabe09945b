import { lookup } from "mime-types";
import type { InboundFile } from "./files.ts";

/**
 * A file's MIME type: the one the platform (or the uploader) gave, else the
 * one its name's extension stands for, else `application/octet-stream`.
 */
export function mimeTypeOf(file: Pick<InboundFile, "name" | "mimeType">): string {
  const given = file.mimeType?.split(";")[0]?.trim().toLowerCase();
  if (given && /^[a-z0-9.+-]+\/[a-z0-9.+-]+$/.test(given)) return given;
  return typeFromName(file.name);
}

/** The MIME type a file name's extension stands for. */
export function typeFromName(name: string): string {
  return lookup(name) || "application/octet-stream";
}

/** Whether `mimeType` matches one of `patterns` (`text/csv`, `image/*`, `*\/*`). */
export function typeAllowed(mimeType: string, patterns: readonly string[]): boolean {
  const [type, sub] = mimeType.toLowerCase().split("/");
  return patterns.some((p) => {
    const [pt, ps] = p.toLowerCase().split("/");
    return (pt === "*" || pt === type) && (ps === "*" || ps === sub);
  });
}
