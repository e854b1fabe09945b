import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { PackageSource } from "./settings.ts";

/**
 * The Nix expressions the gateway evaluates, written under `<data dir>/nix/expr`
 * at start. Package names reach them only as `--argstr attr <name>` (never
 * spliced into Nix code); a name is an attribute path (`python312Packages.requests`).
 */
export interface Expressions {
  dir: string;
  /** `{ attr }`: `{ exists; name; version; }` of one package. */
  info: string;
  /** `{ prefix }`: the attribute names of the set at `prefix` ("" for the top). */
  names: string;
  /** `{ attr }`: the package's outputs to install (a list of derivations). */
  build: string;
  /** Whether evaluating needs the flakes feature. */
  flake: boolean;
}

/** A Nix string literal: no interpolation, no control characters. */
export function nixString(value: string): string {
  if (/[\u0000-\u001f]/.test(value))
    throw new Error(`cannot use ${JSON.stringify(value)} in a Nix expression`);
  return `"${value.replace(/[\\"$]/g, (c) => `\\${c}`)}"`;
}

/** The set as a Nix value: its file imported (and called, if it is a function). */
function sourceExpression(source: PackageSource): string {
  switch (source.kind) {
    case "path":
      return `import ${nixString(source.path)}`;
    case "search-path":
      return `import <${source.name}>`;
    case "tarball":
      return `import (builtins.fetchTarball ${nixString(source.url)})`;
    case "flake":
      return `(builtins.getFlake ${nixString(source.ref)}).legacyPackages.\${builtins.currentSystem}`;
  }
}

const SET = (source: PackageSource) => `# The package set of lobu.toml's packages.nixpkgs.
let raw = ${sourceExpression(source)};
in if builtins.isFunction raw then raw { } else raw
`;

/** Looks an attribute path up in the set: `{ found; value; }`. */
const LOOKUP = `attr:
let
  pkgs = import ./set.nix;
  path = if attr == "" then [ ] else builtins.filter builtins.isString (builtins.split "\\\\." attr);
  step = acc: key:
    if acc.found && builtins.isAttrs acc.value && builtins.hasAttr key acc.value
    then { found = true; value = builtins.getAttr key acc.value; }
    else { found = false; value = null; };
in builtins.foldl' step { found = true; value = pkgs; } path
`;

const INFO = `{ attr }:
let
  hit = import ./lookup.nix attr;
  pkg = hit.value;
  isPackage = hit.found && builtins.isAttrs pkg && (pkg.type or null) == "derivation";
  meta = builtins.tryEval (
    let
      name = pkg.name;
      version = pkg.version or (builtins.parseDrvName name).version;
    in builtins.deepSeq [ name version ] { inherit name version; }
  );
in
if !isPackage then { exists = false; }
else if meta.success then { exists = true; inherit (meta.value) name version; }
else { exists = true; name = attr; version = ""; }
`;

const NAMES = `{ prefix }:
let hit = import ./lookup.nix prefix;
in if hit.found && builtins.isAttrs hit.value && (hit.value.type or null) != "derivation"
then builtins.attrNames hit.value
else [ ]
`;

const BUILD = `{ attr }:
let
  pkg = (import ./lookup.nix attr).value;
  wanted = pkg.meta.outputsToInstall or [ (pkg.outputName or "out") ];
in map (o: builtins.getAttr o pkg) (builtins.filter (o: builtins.hasAttr o pkg) wanted)
`;

/** Write the expressions for `source` into `dir` (replacing what was there). */
export function writeExpressions(dir: string, source: PackageSource): Expressions {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files = {
    "set.nix": SET(source),
    "lookup.nix": LOOKUP,
    "info.nix": INFO,
    "names.nix": NAMES,
    "build.nix": BUILD,
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return {
    dir,
    info: join(dir, "info.nix"),
    names: join(dir, "names.nix"),
    build: join(dir, "build.nix"),
    flake: source.kind === "flake",
  };
}
