import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readlinkSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PackagesSection } from "@lobu/core";
import { createLocalPackageSet, type LocalPackageSet } from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NixPackages } from "../../src/nix/packages.ts";
import { profileId } from "../../src/nix/profiles.ts";
import { nixSettings } from "../../src/nix/settings.ts";
import { testLogger } from "../sandbox/helpers.ts";

/**
 * The Nix side of packages with real Nix: a local package set (no downloads)
 * in a store of its own, built, shared, linked and collected.
 */

let set: LocalPackageSet;
let dataDir: string;
let nix: NixPackages;

const alice = { agentId: "default", userKey: "api::alice" };
const bob = { agentId: "default", userKey: "api::bob" };

function open(extra: Record<string, unknown> = {}): Promise<NixPackages> {
  const section = PackagesSection.parse({
    enabled: true,
    nixpkgs: set.path,
    substituters: [],
    store_dir: set.storeDir,
    state_dir: set.stateDir,
    options: set.options,
    ...extra,
  });
  return NixPackages.open(nixSettings(section, { dataDir, configDir: dataDir }), testLogger()).then(
    (n) => {
      if (!(n instanceof NixPackages)) throw new Error(n.unavailable);
      return n;
    },
  );
}

beforeAll(async () => {
  set = createLocalPackageSet();
  dataDir = mkdtempSync(join(tmpdir(), "lobu-nixdata-"));
  nix = await open({ deny: ["slow-*"] });
});

afterAll(() => {
  rmSync(dataDir, { recursive: true, force: true });
  set?.remove();
});

describe("Nix packages", () => {
  it("builds a package into a profile whose bin runs it", async () => {
    const result = await nix.settled(alice, ["hello-lobu"]);
    expect(result.packages).toEqual([
      {
        attr: "hello-lobu",
        state: expect.objectContaining({ state: "ready", name: "hello-lobu-1.0", version: "1.0" }),
      },
    ]);
    expect(result.storePath?.startsWith(`${set.storeDir}/`)).toBe(true);
    const out = execFileSync(join(result.storePath!, "bin", "hello-lobu"), { encoding: "utf8" });
    expect(out).toBe("Hello from hello-lobu 1.0\n");
  });

  it("says which package was meant when a name is not in the set", async () => {
    const result = await nix.settled(alice, ["hello-lobuu"]);
    expect(result.packages[0]!.state).toMatchObject({
      state: "failed",
      reason: "no package named hello-lobuu in the package set; did you mean hello-lobu?",
    });
    expect(await nix.refusal("greet-lobo")).toBe(
      "no package named greet-lobo in the package set; did you mean greet-lobu?",
    );
    expect(await nix.refusal("hello-lobu")).toBeUndefined();
    // The profile is not left holding nothing but what failed.
    expect(result.storePath).toBeUndefined();
  });

  it("shows a failed build's reason and the last lines of its log", async () => {
    const result = await nix.settled(bob, ["broken-lobu"]);
    const state = result.packages[0]!.state;
    expect(state.state).toBe("failed");
    if (state.state !== "failed") return;
    expect(state.reason).toMatch(
      /^building broken-lobu failed: error: builder for '.*broken-lobu-0\.1\.drv' failed with exit code 1/,
    );
    expect(state.log).toContain("main.c:3: error: missing semicolon in main.c");
  });

  it("refuses what the operator denies, and names that are not names", async () => {
    expect(await nix.refusal("slow-lobu")).toBe(
      'slow-lobu is not provided on this gateway (packages.deny has "slow-*")',
    );
    expect(await nix.refusal("../etc")).toBe('"../etc" is not a Nix package name');
    const result = await nix.settled(bob, ["slow-lobu"]);
    expect(result.packages[0]!.state).toMatchObject({
      state: "failed",
      reason: expect.stringContaining("packages.deny"),
    });
  });

  it("stops a build that takes longer than build_timeout", async () => {
    const quick = await open({ build_timeout: "2s" });
    const result = await quick.settled(bob, ["slow-lobu"]);
    expect(result.packages[0]!.state).toMatchObject({
      state: "failed",
      reason: "building slow-lobu took longer than 2s (packages.build_timeout)",
    });
  });

  it("two people sharing a package share one store path", async () => {
    const a = await nix.settled(alice, ["hello-lobu"]);
    const b = await nix.settled(bob, ["hello-lobu", "greet-lobu"]);
    expect(a.storePath).not.toBe(b.storePath);
    const binOf = (profile: string, name: string) => realpathSync(join(profile, "bin", name));
    expect(binOf(a.storePath!, "hello-lobu")).toBe(binOf(b.storePath!, "hello-lobu"));
    expect(binOf(a.storePath!, "hello-lobu").startsWith(`${set.storeDir}/`)).toBe(true);
  });

  it("points a sandbox at its person's profile and follows its changes", async () => {
    const before = nix.attach("sbx-1", alice);
    const link = join(nix.mounts().linksRoot, "sbx-1", "profile");
    expect(readlinkSync(link)).toBe(before.storePath);
    const after = await nix.settled(alice, ["hello-lobu", "greet-lobu"]);
    expect(after.storePath).not.toBe(before.storePath);
    // The link moved by itself: a sandbox bound to this directory sees it at once.
    expect(readlinkSync(link)).toBe(after.storePath);
    expect(existsSync(join(readlinkSync(link), "bin", "greet-lobu"))).toBe(true);
  });

  it("a shared sandbox shows only the profile of the person whose turn runs", async () => {
    const link = join(nix.mounts().linksRoot, "sbx-shared", "profile");
    const alices = nix.attach("sbx-shared", alice);
    expect(readlinkSync(link)).toBe(alices.storePath);
    // Carol has no packages: nothing of Alice's stays visible in her turn.
    nix.attach("sbx-shared", { agentId: "default", userKey: "api::carol" });
    expect(existsSync(link)).toBe(false);
    nix.attach("sbx-shared", alice);
    expect(readlinkSync(link)).toBe(alices.storePath);
  });

  it("garbage collection removes an unused profile's paths but not a live one's", async () => {
    await nix.settled(alice, ["hello-lobu"]);
    const bobs = await nix.settled(bob, ["greet-lobu"]);
    const greet = realpathSync(join(bobs.storePath!, "bin", "greet-lobu"));
    const hello = realpathSync(
      join((await nix.settled(alice, ["hello-lobu"])).storePath!, "bin", "hello-lobu"),
    );
    // Bob removed his package: his profile is unused; Alice still wants hers.
    const report = await nix.gc(async (owner) =>
      owner.userKey === alice.userKey ? ["hello-lobu"] : [],
    );
    expect(report.profilesRemoved).toBe(1);
    expect(report.pathsDeleted).toBeGreaterThan(0);
    expect(existsSync(greet)).toBe(false);
    expect(existsSync(bobs.storePath!)).toBe(false);
    expect(existsSync(hello)).toBe(true);
    expect(existsSync(join(dataDir, "nix", "profiles", profileId(bob)))).toBe(false);
    expect(existsSync(join(dataDir, "nix", "profiles", profileId(alice)))).toBe(true);
    // The sandbox showing Alice's profile still works after the collection.
    const link = readlinkSync(join(nix.mounts().linksRoot, "sbx-1", "profile"));
    expect(existsSync(join(link, "bin", "hello-lobu"))).toBe(true);
  });
});
