import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PackageBuilds, type PackageBuildsDeps } from "../../src/nix/builds.ts";
import type { NixCli } from "../../src/nix/cli.ts";
import { Profiles, profileId } from "../../src/nix/profiles.ts";

/**
 * The Nix side's own records on disk (a profile's `<id>.json`, a build's
 * `info.json`) are read back through their zod schemas: a corrupt one is
 * never handed on, and the log says which record was lost. Reading them needs
 * no Nix, so these tests run without it (packages.test.ts builds with it).
 */

let root: string;
let errors: { obj: Record<string, unknown>; msg: string }[];
const log = {
  error: (obj: object, msg: string) => errors.push({ obj: obj as Record<string, unknown>, msg }),
  warn: () => {},
  info: () => {},
  debug: () => {},
};
/** Reading records calls no Nix command: a CLI that refuses every call proves it. */
const noNix = new Proxy({} as NixCli, {
  get: () => {
    throw new Error("no Nix command runs when a record is read");
  },
});

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "lobu-nix-records-"));
  errors = [];
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe("Nix records read back from disk", () => {
  const alice = { agentId: "default", userKey: "api::alice" };

  it("a profile record that does not match its schema reads as no profile, and is logged", () => {
    const profiles = new Profiles(noNix, root, log);
    const id = profileId(alice);
    expect(profiles.get(id)).toBeUndefined();
    expect(errors).toEqual([]);

    const sound = { ...alice, packages: { hello: [root] }, storePath: root, updatedAt: 1 };
    writeFileSync(join(profiles.dir, `${id}.json`), JSON.stringify(sound));
    expect(profiles.get(id)).toEqual(sound);

    writeFileSync(
      join(profiles.dir, `${id}.json`),
      JSON.stringify({ ...sound, packages: { hello: "not a list" } }),
    );
    expect(profiles.get(id)).toBeUndefined();
    writeFileSync(join(profiles.dir, `${id}.json`), "{ cut short");
    expect(profiles.get(id)).toBeUndefined();
    expect(errors.map((e) => [e.obj.record, e.obj.reason])).toEqual([
      ["nix profile", expect.stringMatching(/^packages\.hello: /)],
      ["nix profile", "not valid JSON"],
    ]);
  });

  it("a build whose info.json does not match is not ready (built again), and is logged", () => {
    const builds = new PackageBuilds({
      cli: noNix,
      settings: { root, source: { nixpkgs: "test" } },
      log,
      onChange: () => {},
    } as unknown as PackageBuildsDeps);
    const dir = join(builds.resultsDir, "hello");
    mkdirSync(dir, { recursive: true });
    const info = { name: "hello", version: "2.12", paths: [root], closureBytes: 10 };
    writeFileSync(join(dir, "info.json"), JSON.stringify({ ...info, closureBytes: -1 }));
    expect(builds.state("hello")).toBeUndefined();
    expect(errors).toHaveLength(1);
    expect(errors[0]!.obj).toMatchObject({ record: "nix build info" });
    expect(errors[0]!.obj.reason).toMatch(/^closureBytes: /);

    writeFileSync(join(dir, "info.json"), JSON.stringify(info));
    expect(builds.state("hello")).toEqual({ state: "ready", ...info });
  });
});
