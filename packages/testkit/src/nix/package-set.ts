import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A stand-in for nixpkgs: a directory with a `default.nix` whose packages are
 * built by `builtins.derivation` with the host's /bin/sh and coreutils, so
 * nothing is downloaded. It comes with its own Nix store and state directory
 * (under the system temp dir), so tests never touch /nix and can collect
 * garbage freely.
 *
 * Packages:
 * - `hello-lobu` (1.0): `hello-lobu` prints "Hello from hello-lobu 1.0".
 * - `greet-lobu` (2.1): `greet-lobu NAME` prints "Greetings, NAME".
 * - `broken-lobu` (0.1): its build fails ("error: missing semicolon in main.c").
 * - `slow-lobu` (0.5): its build sleeps 600 s (for build timeouts).
 */
export interface LocalPackageSet {
  /** The set's directory (`packages.nixpkgs`). */
  path: string;
  storeDir: string;
  stateDir: string;
  /** `[packages]` for lobu.toml (extra keys appended as given). */
  toml(extra?: Record<string, string | number | boolean | string[]>): string;
  /** The section as NixSettings-style values (for tests that build NixPackages themselves). */
  options: Record<string, string>;
  remove(): void;
}

const script = (lines: string[]) => lines.join("\n");

function program(name: string, body: string): string {
  return script([
    "mkdir -p $out/bin",
    `cat > $out/bin/${name} <<'EOF'`,
    "#!/bin/sh",
    body,
    "EOF",
    `chmod +x $out/bin/${name}`,
  ]);
}

const DEFAULT_NIX = (packages: Record<string, string>) => `{ ... }:
let
  mk = name: script: builtins.derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" script ];
    PATH = "/usr/bin:/bin";
  };
in {
${Object.entries(packages)
  .map(([attr, def]) => `  ${attr} = ${def};`)
  .join("\n")}
}
`;

const nixIndented = (text: string) => `''\n${text}\n''`;

export function createLocalPackageSet(): LocalPackageSet {
  const root = mkdtempSync(join(tmpdir(), "lobu-nix-"));
  const path = join(root, "set");
  const storeDir = join(root, "store");
  const stateDir = join(root, "var");
  mkdirSync(path);
  writeFileSync(
    join(path, "default.nix"),
    DEFAULT_NIX({
      "hello-lobu": `mk "hello-lobu-1.0" ${nixIndented(program("hello-lobu", 'echo "Hello from hello-lobu 1.0"'))}`,
      "greet-lobu": `mk "greet-lobu-2.1" ${nixIndented(program("greet-lobu", 'echo "Greetings, $1"'))}`,
      "broken-lobu": `mk "broken-lobu-0.1" ${nixIndented(
        script([
          'echo "compiling main.c"',
          'echo "main.c:3: error: missing semicolon in main.c" >&2',
          "exit 1",
        ]),
      )}`,
      "slow-lobu": `mk "slow-lobu-0.5" ${nixIndented(script(["sleep 600", "mkdir -p $out"]))}`,
    }),
  );
  // Builds run in Nix's sandbox (the default), with the host's shell and coreutils shown in it.
  const sandboxPaths = ["/bin", "/usr", "/lib", "/lib64"].filter((p) => existsSync(p)).join(" ");
  const options = { "sandbox-paths": sandboxPaths };
  return {
    path,
    storeDir,
    stateDir,
    options,
    toml(extra = {}) {
      const lines = [
        "[packages]",
        "enabled = true",
        `nixpkgs = ${JSON.stringify(path)}`,
        "substituters = []",
        `store_dir = ${JSON.stringify(storeDir)}`,
        `state_dir = ${JSON.stringify(stateDir)}`,
        ...Object.entries(extra).map(([k, v]) => `${k} = ${JSON.stringify(v)}`),
        "[packages.options]",
        ...Object.entries(options).map(([k, v]) => `${JSON.stringify(k)} = ${JSON.stringify(v)}`),
      ];
      return `${lines.join("\n")}\n`;
    },
    remove() {
      rmSync(root, { recursive: true, force: true, maxRetries: 3 });
    },
  };
}
