import { minimatch } from "minimatch";
import { describe, expect, it } from "vitest";
import { compileGlob, GlobError, MAX_GLOB_LENGTH } from "../../src/virtual/glob.ts";

/**
 * The virtual tier's glob matcher: minimatch's meaning (dot: true) for every glob an agent
 * is likely to write, in linear time for every glob it could write.
 */

const PATTERNS = [
  "*",
  "*.ts",
  "**/*.ts",
  "src/**/*.ts",
  "a/**",
  "**",
  "[!a]",
  "[a-c]x",
  "*.{js,ts}",
  "a{1..3}",
  "a**b",
  "+(a)b",
  "*(a|b)c",
  "?(x)y",
  "@(a|b)",
  "a?c",
  "a]",
  "a[",
  "a\\*",
  "!foo",
  "[[:alpha:]]",
  "a[a-z-]b",
  "**/.git/**",
  "**/node_modules/**",
  "{src,lib}/**/*.ts",
  "x{a,{b,c}}y",
  "*.[ch]",
  "[^.]*",
  "a/*/c",
  "**/b/**",
  "{a}",
  "a{}b",
  "*(a|aa)*(a|aa)*(a|aa)c",
];

const PATHS = [
  "a",
  "b",
  "ab",
  "aab",
  "abc",
  "a/b",
  "a/c",
  "a/b/c",
  "x.ts",
  "src/x.ts",
  "src/a/b/x.ts",
  "lib/a.ts",
  ".env",
  "a/.git/x",
  ".git/x/_",
  "node_modules/x/_",
  "a.js",
  "a1",
  "a4",
  "a]",
  "a[",
  "a*",
  "a\\*",
  "foo",
  "bar",
  "x",
  "a-b",
  "c",
  "ac",
  "bc",
  "xay",
  "xby",
  "xcy",
  "q.c",
  "q.h",
  ".x",
  "a/x/c",
  "b/x",
  "q/b/r",
  "{a}",
  "a{}b",
  "aaaaac",
  "aaac",
];

describe("linear-time globs", () => {
  it("agrees with minimatch (dot: true) on the globs agents write", () => {
    const disagreements: string[] = [];
    for (const pattern of PATTERNS) {
      const matches = compileGlob(pattern);
      for (const path of PATHS) {
        if (matches(path) !== minimatch(path, pattern, { dot: true }))
          disagreements.push(`${pattern} ~ ${path}`);
      }
    }
    expect(disagreements).toEqual([]);
  });

  it("matches a backtracking extglob against a long name without backtracking", () => {
    // minimatch needs about a second for 28 characters here, and doubles every two more.
    const matches = compileGlob("*(a|aa)*(a|aa)*(a|aa)c");
    expect(matches("a".repeat(100_000))).toBe(false);
    expect(matches(`${"a".repeat(100_000)}c`)).toBe(true);
    expect(compileGlob("*a*a*a*a*a*a*a*a*a*a*a*a*b")("a".repeat(50_000))).toBe(false);
  });

  it("refuses what it cannot match in linear time, and overlong or broken globs", () => {
    expect(() => compileGlob("!(a)")).toThrow(/negated extglobs .* not supported/);
    expect(() => compileGlob("*".repeat(MAX_GLOB_LENGTH + 1))).toThrow(GlobError);
    expect(() => compileGlob("*(a|b")).toThrow(/unclosed \(/);
  });
});
