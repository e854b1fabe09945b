import { readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { check, folderCycles, importsOf, LAYERS, violations, WITHIN_LAYER } from "./layers.ts";

const SRC = resolve(import.meta.dirname, "../../src");

describe("the layer rule of packages/gateway/src (docs/architecture.md)", () => {
  it("holds: no import reaches a higher layer, a sibling surface or past a platform's context", () => {
    expect(violations(SRC)).toEqual([]);
  });

  it("leaves no folder cycles", () => {
    expect(folderCycles(SRC)).toEqual([]);
  });

  it("places every folder of src in exactly one layer", () => {
    const folders = readdirSync(SRC).filter((name) => statSync(join(SRC, name)).isDirectory());
    const placed = LAYERS.flatMap((l) => l.folders);
    expect(folders.filter((f) => !placed.includes(f))).toEqual([]);
    expect(new Set(placed).size).toBe(placed.length);
  });

  it("allows within a layer only a few named imports, none of them both ways", () => {
    for (const [from, to] of WITHIN_LAYER) {
      expect(WITHIN_LAYER.some(([f, t]) => f === to && t === from)).toBe(false);
    }
  });
});

describe("the layer check", () => {
  it("finds every kind of import specifier", () => {
    const source = [
      'import type { A } from "../domain/origin.ts";',
      "import {",
      "  b,",
      "  type C,",
      '} from "./b.ts";',
      'export { d } from "../util/d.ts";',
      'export * from "./e.ts";',
      'import "./side-effect.ts";',
      'const lazy = await import("../runtime/lazy.ts");',
      'import { z } from "zod";',
      "// a comment that says import x from './not-an-import.ts'",
    ].join("\n");
    expect(importsOf(source).sort()).toEqual(
      [
        "../domain/origin.ts",
        "./b.ts",
        "../util/d.ts",
        "./e.ts",
        "./side-effect.ts",
        "../runtime/lazy.ts",
      ].sort(),
    );
  });

  it("refuses an upward import, and allows the downward one", () => {
    expect(check("runtime/answers.ts", "settings/routes.ts")).toMatch(/higher layer/);
    expect(check("settings/routes.ts", "runtime/answers.ts")).toBeNull();
    expect(check("domain/origin.ts", "store/port.ts")).toMatch(/WITHIN_LAYER/);
  });

  it("keeps surfaces apart", () => {
    expect(check("settings/routes.ts", "api/routes.ts")).toMatch(/both in layer 6/);
    expect(check("admin/routes.ts", "platforms/slack/oauth.ts")).toMatch(/both in layer 6/);
  });

  it("keeps platform code to its own folder, platforms/shared and the foundation", () => {
    expect(check("platforms/slack/adapter.ts", "platforms/shared/adapter.ts")).toBeNull();
    expect(check("platforms/slack/oauth.ts", "http/web.ts")).toBeNull();
    expect(check("platforms/slack/adapter.ts", "runtime/answers.ts")).toMatch(/AdapterContext/);
    expect(check("platforms/slack/adapter.ts", "store/port.ts")).toMatch(/AdapterContext/);
    expect(check("platforms/slack/adapter.ts", "platforms/telegram/html.ts")).toMatch(
      /AdapterContext/,
    );
    expect(check("platforms/shared/adapter.ts", "platforms/slack/adapter.ts")).toMatch(
      /AdapterContext/,
    );
    // The registration list imports each platform folder.
    expect(check("platforms/index.ts", "platforms/telegram/index.ts")).toBeNull();
  });

  it("names a folder that is in no layer", () => {
    expect(check("plugins/client.ts", "domain/origin.ts")).toMatch(/plugins\/ is in no layer/);
  });
});
