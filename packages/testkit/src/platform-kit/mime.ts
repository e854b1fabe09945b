/** File types the platform emulators infer from a file name, as the platforms do. */
const MIME: Record<string, string> = {
  txt: "text/plain",
  md: "text/markdown",
  json: "application/json",
  csv: "text/csv",
  pdf: "application/pdf",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  zip: "application/zip",
  html: "text/html",
};

/** The lower-case extension, or "binary" without one (Slack's `filetype`). */
export function extOf(name: string): string {
  const dot = name.lastIndexOf(".");
  return dot < 0 ? "binary" : name.slice(dot + 1).toLowerCase();
}

export function mimeFor(name: string): string {
  return MIME[extOf(name)] ?? "application/octet-stream";
}
