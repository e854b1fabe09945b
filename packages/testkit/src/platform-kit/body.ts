/**
 * Request body decoding shared by the platform emulators: JSON, url-encoded forms
 * and multipart/form-data (parsed leniently, the way the platforms' servers accept
 * what real client libraries send, e.g. grammY's header-without-space parts).
 */

export interface UploadedFile {
  field: string;
  filename: string;
  contentType: string;
  data: Buffer;
}

export type BodyKind = "none" | "json" | "form" | "multipart" | "other";

export interface ParsedBody {
  kind: BodyKind;
  /** Media type without parameters, lower case ("" when absent). */
  mediaType: string;
  charset?: string;
  raw: Buffer;
  /** Parsed JSON value for `json` bodies. */
  json?: unknown;
  /** Text fields of form and multipart bodies. */
  fields: Record<string, string>;
  files: UploadedFile[];
  /** Set when the body claimed a type but could not be decoded. */
  error?: "invalid_json" | "invalid_form_data";
}

export function parseContentType(header: string | undefined): {
  mediaType: string;
  params: Record<string, string>;
} {
  if (!header) return { mediaType: "", params: {} };
  const [type = "", ...rest] = header.split(";");
  const params: Record<string, string> = {};
  for (const part of rest) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim().toLowerCase();
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    params[key] = value;
  }
  return { mediaType: type.trim().toLowerCase(), params };
}

export function parseBody(raw: Buffer, contentType: string | undefined): ParsedBody {
  const { mediaType, params } = parseContentType(contentType);
  const base: ParsedBody = {
    kind: "none",
    mediaType,
    raw,
    fields: {},
    files: [],
    ...(params.charset ? { charset: params.charset.toLowerCase() } : {}),
  };
  if (raw.length === 0 && mediaType === "") return base;
  if (mediaType === "application/json") {
    try {
      return { ...base, kind: "json", json: raw.length ? JSON.parse(raw.toString("utf8")) : {} };
    } catch {
      return { ...base, kind: "json", error: "invalid_json" };
    }
  }
  if (mediaType === "application/x-www-form-urlencoded") {
    return { ...base, kind: "form", fields: parseForm(raw.toString("utf8")) };
  }
  if (mediaType === "multipart/form-data") {
    const boundary = params.boundary;
    if (!boundary) return { ...base, kind: "multipart", error: "invalid_form_data" };
    const parsed = parseMultipart(raw, boundary);
    if (!parsed) return { ...base, kind: "multipart", error: "invalid_form_data" };
    return { ...base, kind: "multipart", ...parsed };
  }
  return { ...base, kind: "other" };
}

export function parseForm(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(text)) out[key] = value;
  return out;
}

const CRLF = Buffer.from("\r\n");
const HEADER_END = Buffer.from("\r\n\r\n");

export function parseMultipart(
  raw: Buffer,
  boundary: string,
): { fields: Record<string, string>; files: UploadedFile[] } | undefined {
  const delimiter = Buffer.from(`--${boundary}`);
  const fields: Record<string, string> = {};
  const files: UploadedFile[] = [];
  let pos = raw.indexOf(delimiter);
  if (pos < 0) return undefined;
  for (;;) {
    pos += delimiter.length;
    // "--" right after a delimiter closes the body.
    if (raw[pos] === 0x2d && raw[pos + 1] === 0x2d) break;
    if (raw.subarray(pos, pos + 2).equals(CRLF)) pos += 2;
    const next = raw.indexOf(delimiter, pos);
    if (next < 0) return undefined;
    // The part ends with the CRLF that precedes the next delimiter.
    let end = next;
    if (end >= 2 && raw[end - 2] === 0x0d && raw[end - 1] === 0x0a) end -= 2;
    const part = raw.subarray(pos, end);
    const headerEnd = part.indexOf(HEADER_END);
    if (headerEnd < 0) return undefined;
    const headers = parsePartHeaders(part.subarray(0, headerEnd).toString("utf8"));
    const data = part.subarray(headerEnd + HEADER_END.length);
    const disposition = headers["content-disposition"] ?? "";
    const name = dispositionParam(disposition, "name");
    if (name !== undefined) {
      const filename = dispositionParam(disposition, "filename");
      if (filename !== undefined) {
        files.push({
          field: name,
          filename,
          contentType: headers["content-type"] ?? "application/octet-stream",
          data: Buffer.from(data),
        });
      } else {
        fields[name] = data.toString("utf8");
      }
    }
    pos = next;
  }
  return { fields, files };
}

function parsePartHeaders(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    out[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return out;
}

/** Reads `name="x"` or `name=x` from a Content-Disposition value. */
function dispositionParam(disposition: string, param: string): string | undefined {
  const re = new RegExp(`(?:^|;)\\s*${param}=("((?:[^"\\\\]|\\\\.)*)"|[^;]*)`, "i");
  const match = re.exec(disposition);
  if (!match) return undefined;
  return match[2] !== undefined ? match[2].replace(/\\(.)/g, "$1") : (match[1] ?? "").trim();
}

/**
 * Request fields for the emulators' call logs: JSON-valued fields of form
 * bodies (blocks, reply_markup, entities...) as values, not strings.
 */
export function decodeJsonFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    if (typeof value === "string" && /^[[{]/.test(value)) {
      try {
        out[key] = JSON.parse(value);
        continue;
      } catch {
        // plain text after all
      }
    }
    out[key] = value;
  }
  return out;
}
