import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

/**
 * The rule of docs/development.md ("Failures"): a failure the caller survives
 * is never silent. There is no `.catch(() => {})` and no empty `catch {}` in
 * packages/*\/src: a site says what it is with bestEffort (logged with what was
 * lost), ignoreGone or settled (@lobu/core/best-effort), and a catch that
 * deliberately swallows says why in a comment inside it.
 */
const PACKAGES = resolve(import.meta.dirname, "../../..");

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === "node_modules" ? [] : sources(path);
    return /\.tsx?$/.test(name) ? [path] : [];
  });
}

/** The line numbers of every silent catch in `source`. */
function silentCatches(source: string): number[] {
  const lines: number[] = [];
  const patterns = [
    /\.catch\(\s*\(\s*\)\s*=>\s*\{\s*\}\s*\)/g,
    /\bcatch\s*(\([^)]*\)\s*)?\{\s*\}/g,
  ];
  for (const pattern of patterns)
    for (const m of source.matchAll(pattern))
      lines.push(source.slice(0, m.index).split("\n").length);
  return lines.sort((a, b) => a - b);
}

describe("silent failures", () => {
  it("the check finds both forms, and not a catch that says why", () => {
    const source = [
      "await a.close().catch(() => {});",
      "try { x(); } catch {}",
      "try { y(); } catch (err) { }",
      "try { z(); } catch {",
      "  // Not there: look in the next folder.",
      "}",
      "await b.close().catch(bestEffort(log, 'b not closed'));",
    ].join("\n");
    expect(silentCatches(source)).toEqual([1, 2, 3]);
  });

  it("none in packages/*/src", () => {
    const found: string[] = [];
    for (const pkg of readdirSync(PACKAGES)) {
      const src = join(PACKAGES, pkg, "src");
      if (!statSync(join(PACKAGES, pkg)).isDirectory()) continue;
      let files: string[];
      try {
        files = sources(src);
      } catch {
        // A package without src (none today): nothing to check.
        continue;
      }
      for (const file of files)
        for (const line of silentCatches(readFileSync(file, "utf8")))
          found.push(`${relative(PACKAGES, file)}:${line}`);
    }
    expect(found).toEqual([]);
  });
});
