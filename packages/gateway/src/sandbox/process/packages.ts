import { mkdirSync } from "node:fs";
import { join } from "node:path";

/** Where a sandbox sees its package link directory (read-only). */
export const SANDBOX_PACKAGES = "/run/lobu/packages";
/** The profile of the person whose turn runs: its bin/ goes first on PATH. */
export const SANDBOX_PROFILE = `${SANDBOX_PACKAGES}/profile`;

/**
 * Nix packages in `process` sandboxes (see nix/ in the gateway): the store,
 * read-only at its own path (store paths are absolute), and the sandbox's own
 * link directory `<linksRoot>/<sandbox id>`, read-only at SANDBOX_PACKAGES. The
 * gateway repoints the `profile` link inside it per turn and when packages
 * become ready; binding the directory (not the link) makes that visible at once.
 */
export interface PackageMounts {
  storeDir: string;
  linksRoot: string;
}

/** The read-only binds for one sandbox, each with a staging name. */
export function packageBinds(
  mounts: PackageMounts,
  sandboxId: string,
): Array<{ source: string; dest: string; name: string }> {
  const links = join(mounts.linksRoot, sandboxId);
  mkdirSync(links, { recursive: true, mode: 0o755 });
  mkdirSync(mounts.storeDir, { recursive: true });
  return [
    { source: mounts.storeDir, dest: mounts.storeDir, name: "nix-store" },
    { source: links, dest: SANDBOX_PACKAGES, name: "packages" },
  ];
}

/** The environment entries that put the profile first (PATH) and its manuals in reach. */
export function packageEnv(path: string): Record<string, string> {
  return {
    PATH: `${SANDBOX_PROFILE}/bin:${path}`,
    MANPATH: `${SANDBOX_PROFILE}/share/man:`,
  };
}
