import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { marked, type Token, type Tokens } from "marked";
import { describe, expect, it } from "vitest";

// The documentation is the whole repository's; it is checked here because the
// gateway already depends on marked, the Markdown parser used to read it.
const ROOT = join(import.meta.dirname, "../../../..");

function markdownFiles(): string[] {
  const docs = readdirSync(join(ROOT, "docs"), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".md"))
    .map((f) => join("docs", f));
  return ["README.md", ...docs].sort();
}

/** Every token, nested ones (list items, table cells, emphasis) included. */
function walk(tokens: Token[], visit: (t: Token) => void): void {
  for (const t of tokens) {
    visit(t);
    const nested = t as {
      tokens?: Token[];
      items?: Token[];
      header?: Tokens.TableCell[];
      rows?: Tokens.TableCell[][];
    };
    if (nested.tokens) walk(nested.tokens, visit);
    if (nested.items) walk(nested.items, visit);
    for (const cell of [...(nested.header ?? []), ...(nested.rows ?? []).flat()])
      walk(cell.tokens, visit);
  }
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes, repeats numbered. */
function anchors(tokens: Token[]): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  walk(tokens, (t) => {
    if (t.type === "heading") {
      const plain = (t as Tokens.Heading).text.replace(/\[([^\]]*)\]\([^)]*\)/g, "$1");
      const slug = plain
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\p{M}\- _]/gu, "")
        .replace(/ /g, "-");
      const n = seen.get(slug) ?? 0;
      seen.set(slug, n + 1);
      out.add(n ? `${slug}-${n}` : slug);
    }
    if (t.type === "html")
      for (const m of t.raw.matchAll(/\b(?:id|name)="([^"]+)"/g)) out.add(m[1]!);
  });
  return out;
}

const files = markdownFiles();
const parsed = new Map(files.map((f) => [f, marked.lexer(readFileSync(join(ROOT, f), "utf8"))]));

describe("links between the docs", () => {
  for (const file of files) {
    it(`${file}: every relative link and #anchor resolves`, () => {
      const broken: string[] = [];
      walk(parsed.get(file)!, (t) => {
        if (t.type !== "link" && t.type !== "image") return;
        const href = (t as Tokens.Link).href;
        if (/^[a-z][a-z0-9+.-]*:/i.test(href)) return; // https:, mailto:
        const [path = "", fragment] = href.split("#", 2);
        const target = path ? normalize(join(dirname(file), decodeURIComponent(path))) : file;
        if (!existsSync(join(ROOT, target))) {
          broken.push(`${href} (no ${target})`);
          return;
        }
        if (!fragment || !target.endsWith(".md") || statSync(join(ROOT, target)).isDirectory())
          return;
        const tokens = parsed.get(target) ?? marked.lexer(readFileSync(join(ROOT, target), "utf8"));
        if (!anchors(tokens).has(fragment))
          broken.push(`${href} (no heading "#${fragment}" in ${target})`);
      });
      expect(broken).toEqual([]);
    });
  }
});
