/**
 * The forms a secret can come back in from a host it was sent to, so the
 * redactor can find each of them: as is, JSON-escaped, URL-encoded (the
 * encodings the proxy applies when it swaps into a body or a URL), and inside
 * base64 / base64url text (the proxy re-encodes `Authorization: Basic`, and
 * hosts echo credentials, tokens and stored blobs in base64).
 *
 * A value inside a longer base64 text is encoded differently depending on its
 * byte offset modulo 3; for each offset only the run of characters computed from
 * the value's bytes alone is fixed, so that run is the form to look for (the one
 * or two characters at each edge mix in neighbouring bytes and carry at most a
 * few bits of the value's first and last byte).
 */

export type EchoKind =
  | "raw"
  | "json"
  | "url"
  | "form"
  | `${"base64" | "base64url"}${0 | 1 | 2}`
  | `${"base64" | "base64url"}${0 | 1 | 2}-url`;

/** Shorter values get no base64 forms: their runs would be too short to be unique. */
const MIN_BASE64_BYTES = 8;

/** The characters of base64(`offset` other bytes + value) that depend only on the value. */
function base64Run(bytes: Buffer, offset: 0 | 1 | 2, alphabet: "base64" | "base64url"): string {
  const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString(alphabet);
  const first = Math.ceil((offset * 8) / 6);
  const end = Math.floor(((offset + bytes.length) * 8) / 6);
  return encoded.slice(first, end);
}

/** Every form of `value` (UTF-8 text), by kind; kinds whose form is the same text collapse. */
export function echoForms(value: string): Map<EchoKind, string> {
  const forms = new Map<EchoKind, string>([
    ["raw", value],
    ["json", JSON.stringify(value).slice(1, -1)],
    ["url", encodeURIComponent(value)],
    // HTML forms and URLSearchParams encode a little differently (`+` for a space).
    ["form", new URLSearchParams({ v: value }).toString().slice(2)],
  ]);
  const bytes = Buffer.from(value, "utf8");
  if (bytes.length >= MIN_BASE64_BYTES) {
    for (const alphabet of ["base64", "base64url"] as const) {
      for (const offset of [0, 1, 2] as const) {
        const run = base64Run(bytes, offset, alphabet);
        forms.set(`${alphabet}${offset}`, run);
        // Standard base64 in a query string or a Location header.
        const escaped = encodeURIComponent(run);
        if (escaped !== run) forms.set(`${alphabet}${offset}-url`, escaped);
      }
    }
  }
  return forms;
}

/**
 * Needle → replacement for redacting `value` back to `replacement`: each form
 * of the value is replaced by the same form of the replacement (a base64 run by
 * the replacement's run at the same offset), so the text keeps its shape.
 */
export function echoPairs(value: string, replacement: string): Map<string, string> {
  return value ? echoPairsOf(echoForms(value), replacement) : new Map();
}

/** echoPairs with the value's forms (echoForms) already derived. */
export function echoPairsOf(
  forms: Map<EchoKind, string>,
  replacement: string,
): Map<string, string> {
  const out = new Map<string, string>();
  const back = echoForms(replacement);
  for (const [kind, form] of forms) {
    if (out.has(form)) continue;
    const plain = kind.endsWith("-url") ? back.get(kind.slice(0, -4) as EchoKind) : undefined;
    out.set(form, back.get(kind) ?? (plain ? encodeURIComponent(plain) : replacement));
  }
  return out;
}
