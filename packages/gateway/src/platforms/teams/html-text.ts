/**
 * A Teams message's HTML body (as Microsoft Graph gives it) as plain text:
 * paragraphs and line breaks kept, mentions as `@Name`, pictures as
 * `[image]`, links with their address, other markup dropped, entities
 * decoded. What comes out is data for the model, never rendered.
 */
export function htmlToText(html: string): string {
  return decodeEntities(
    html
      .replace(/<at\b[^>]*>([^<]{0,256})<\/at>/gi, "@$1")
      .replace(/<img\b[^>]*>/gi, "[image]")
      .replace(/<a\b[^>]*href="([^"]{0,2000})"[^>]*>([^<]{0,2000})<\/a>/gi, (_all, href, text) =>
        text && text !== href ? `${text} (${href})` : href,
      )
      .replace(/<br\s*\/?>/gi, "\n")
      .replace(/<\/(p|div|li|h[1-6]|blockquote|pre|tr)>/gi, "\n")
      .replace(/<li\b[^>]*>/gi, "- ")
      .replace(/<[^>]{0,2000}>/g, ""),
  )
    .replace(/[ \t]+/g, " ")
    .replace(/ *\n */g, "\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}

const NAMED: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: " ",
};

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]{1,6}|#\d{1,7}|[a-z]{2,6});/gi, (all, name: string) => {
    if (name[0] !== "#") return NAMED[name.toLowerCase()] ?? all;
    const code =
      name[1] === "x" || name[1] === "X"
        ? Number.parseInt(name.slice(2), 16)
        : Number(name.slice(1));
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : all;
  });
}
