import { isAbsolute, join, resolve } from "node:path";
import type { PackagesSection } from "@lobu/core";

/** `[packages]` of lobu.toml as the Nix modules use it (paths resolved, units converted). */
export interface NixSettings {
  /** Where the package set comes from (see setSource). */
  source: PackageSource;
  storeDir: string;
  stateDir: string;
  substituters: string[];
  trustedPublicKeys: string[];
  /** More nix.conf settings (`sandbox-paths`, `cores`, ...). */
  options: Record<string, string>;
  allow: string[];
  deny: string[];
  buildTimeoutMs: number;
  maxClosureBytes: number;
  gcIntervalMs: number;
  /** The gateway's own files: expressions, per-package results, profiles, sandbox links. */
  root: string;
}

/** How `packages.nixpkgs` names the package set. */
export type PackageSource =
  | { kind: "path"; path: string }
  | { kind: "search-path"; name: string }
  | { kind: "tarball"; url: string }
  | { kind: "flake"; ref: string };

const SEARCH_PATH = /^<([A-Za-z0-9._+-]+)>$/;
const CHANNEL = /^channel:([A-Za-z0-9._-]+)$/;
const FLAKE = /^[a-z][a-z0-9+]*:/;

/**
 * Read `packages.nixpkgs`: `<name>` (NIX_PATH), `channel:<name>` (the channel's
 * tarball on nixos.org), an http(s) URL of a tarball, a flake reference
 * (`github:owner/repo/ref`, `flake:nixpkgs`, `git+https://…`), or else a path
 * (relative to lobu.toml's directory).
 */
export function setSource(value: string, configDir: string): PackageSource {
  const search = SEARCH_PATH.exec(value);
  if (search) return { kind: "search-path", name: search[1]! };
  const channel = CHANNEL.exec(value);
  if (channel)
    return { kind: "tarball", url: `https://nixos.org/channels/${channel[1]}/nixexprs.tar.xz` };
  if (/^https?:\/\//.test(value)) return { kind: "tarball", url: value };
  if (FLAKE.test(value) && !isAbsolute(value)) return { kind: "flake", ref: value };
  return { kind: "path", path: isAbsolute(value) ? value : resolve(configDir, value) };
}

export function nixSettings(
  section: PackagesSection,
  opts: { dataDir: string; configDir: string },
): NixSettings {
  return {
    source: setSource(section.nixpkgs, opts.configDir),
    storeDir: section.store_dir,
    stateDir: section.state_dir,
    substituters: section.substituters,
    trustedPublicKeys: section.trusted_public_keys,
    options: section.options,
    allow: section.allow,
    deny: section.deny,
    buildTimeoutMs: section.build_timeout,
    maxClosureBytes: section.max_closure_mb * 1024 * 1024,
    gcIntervalMs: section.gc_interval,
    root: join(opts.dataDir, "nix"),
  };
}
