import { PackagesSection } from "@lobu/core";
import { describe, expect, it } from "vitest";
import { checkNix } from "../../src/nix/doctor.ts";

describe("lobu doctor: Nix", () => {
  it("says packages are off when [packages] is not enabled", async () => {
    const checks = await checkNix(PackagesSection.parse({}), { configDir: "/", offline: true });
    expect(checks).toEqual([expect.objectContaining({ level: "ok", title: "Nix packages: off" })]);
  });

  it("fails with how to install Nix when it is not on PATH", async () => {
    const checks = await checkNix(PackagesSection.parse({ enabled: true }), {
      configDir: "/",
      offline: true,
      env: { PATH: "/nonexistent" },
    });
    expect(checks).toEqual([
      {
        level: "fail",
        title: "Nix packages: Nix is not installed",
        detail:
          "apt-get install nix-bin (Debian/Ubuntu; or https://nixos.org/download), then run lobu doctor again",
      },
    ]);
  });
});
