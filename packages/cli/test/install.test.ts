import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "@lobu/testkit";
import { describe, expect, it } from "vitest";

/**
 * `npm ci` on a clean clone stays quiet: every dependency's install script has
 * been reviewed (allowed or denied in package.json's `allowScripts`), so npm has
 * nothing to list, and a new dependency with one fails here until it is reviewed
 * (`npm install-scripts ls`, then `approve` or `deny`).
 */
describe("a clean install", () => {
  const read = (file: string) => JSON.parse(readFileSync(join(REPO_ROOT, file), "utf8"));

  it("runs only reviewed install scripts", () => {
    const lock = read("package-lock.json") as {
      packages: Record<string, { hasInstallScript?: boolean }>;
    };
    const reviewed = Object.keys(
      (read("package.json") as { allowScripts?: Record<string, boolean> }).allowScripts ?? {},
    ).map((key) => key.replace(/(?<=.)@[^@/]*$/, "")); // "pkg@1.2.3" → "pkg"
    const withScripts = Object.entries(lock.packages)
      .filter(([path, p]) => p.hasInstallScript && path.includes("node_modules/"))
      .map(([path]) => path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length));
    expect(withScripts.length).toBeGreaterThan(0);
    expect(withScripts.filter((name) => !reviewed.includes(name))).toEqual([]);
  });
});
