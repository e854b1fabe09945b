import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PackagesSection } from "@lobu/core";
import { errorLine, NixCli } from "./cli.ts";
import { writeExpressions } from "./expressions.ts";
import { nixSettings, setSource } from "./settings.ts";

export interface NixCheck {
  level: "ok" | "warn" | "fail";
  title: string;
  detail?: string;
}

/** The oldest Nix Lobu is tested with (Debian 12's nix-bin). */
const MIN_VERSION = [2, 8];

/**
 * `lobu doctor`'s checks of `[packages]`: Nix is installed and recent enough,
 * it can build into the store (a trivial derivation, built by Nix itself, so
 * it works in Nix's build sandbox too), the substituters answer, and the
 * package set evaluates. Each problem says how to fix it.
 */
export async function checkNix(
  section: PackagesSection,
  opts: { configDir: string; offline: boolean; env?: NodeJS.ProcessEnv },
): Promise<NixCheck[]> {
  if (!section.enabled)
    return [
      {
        level: "ok",
        title: "Nix packages: off",
        detail: "[packages] enabled = true in lobu.toml provides them (see docs/packages.md)",
      },
    ];
  const cli = new NixCli(
    nixSettings(section, { dataDir: tmpdir(), configDir: opts.configDir }),
    opts.env,
  );
  const version = await cli.version();
  if (!version)
    return [
      {
        level: "fail",
        title: "Nix packages: Nix is not installed",
        detail:
          "apt-get install nix-bin (Debian/Ubuntu; or https://nixos.org/download), then run lobu doctor again",
      },
    ];
  const checks: NixCheck[] = [];
  const [major = 0, minor = 0] = version.split(".").map(Number);
  const recent = major > MIN_VERSION[0]! || (major === MIN_VERSION[0] && minor >= MIN_VERSION[1]!);
  checks.push(
    recent
      ? { level: "ok", title: `Nix ${version} (${cli.binDir})` }
      : {
          level: "warn",
          title: `Nix ${version} is older than ${MIN_VERSION.join(".")}`,
          detail: "Lobu is tested with Nix 2.8 and later; upgrade nix-bin",
        },
  );
  checks.push(await buildCheck(cli, section));
  if (!opts.offline) checks.push(...(await substituterChecks(section)));
  checks.push(await setCheck(cli, section, opts));
  return checks;
}

/** Build a trivial derivation (Nix's own buildenv builder): the store is writable and builds run. */
async function buildCheck(cli: NixCli, section: PackagesSection): Promise<NixCheck> {
  const nonce = `${process.pid}-${Date.now()}`;
  const res = await cli.run(
    "nix-build",
    [
      "--no-out-link",
      "-E",
      `derivation { name = "lobu-doctor-${nonce}"; system = "builtin"; builder = "builtin:buildenv"; derivations = [ ]; manifest = builtins.toFile "manifest.nix" "[ ]"; }`,
    ],
    { timeoutMs: 60_000 },
  );
  if (res.code === 0)
    return { level: "ok", title: `Nix store ${section.store_dir} is writable and builds run` };
  const why = res.timedOut ? "the build did not finish within a minute" : errorLine(res.tail);
  return {
    level: "fail",
    title: `Nix cannot build into ${section.store_dir}`,
    detail: `${why}\n${buildHint(why)}`,
  };
}

function buildHint(why: string): string {
  if (/build-users-group|nixbld/.test(why))
    return "create the build users (apt-get install nix-setup-systemd) or run the gateway as root";
  if (/Permission denied|read-only|not writable|cannot open connection/i.test(why))
    return "run the gateway as root, or start nix-daemon (nix-setup-systemd) and set NIX_REMOTE=daemon";
  return "check `nix-build --version` and the store's permissions";
}

async function substituterChecks(section: PackagesSection): Promise<NixCheck[]> {
  const out: NixCheck[] = [];
  for (const url of section.substituters) {
    if (!/^https?:\/\//.test(url)) continue;
    try {
      const res = await fetch(`${url.replace(/\/$/, "")}/nix-cache-info`, {
        signal: AbortSignal.timeout(8000),
      });
      out.push(
        res.ok
          ? { level: "ok", title: `Nix substituter ${url} reachable` }
          : { level: "warn", title: `Nix substituter ${url}: HTTP ${res.status}` },
      );
    } catch (err) {
      out.push({
        level: "warn",
        title: `Nix substituter ${url} unreachable`,
        detail: `${(err as Error).message}: packages will be built from source, which is slow (check the network, or packages.substituters)`,
      });
    }
  }
  return out;
}

/** Evaluate the package set's top-level names (fetching it first when it is remote). */
async function setCheck(
  cli: NixCli,
  section: PackagesSection,
  opts: { configDir: string; offline: boolean },
): Promise<NixCheck> {
  const source = setSource(section.nixpkgs, opts.configDir);
  if (opts.offline && source.kind !== "path")
    return {
      level: "ok",
      title: `package set ${section.nixpkgs}: not fetched (--offline)`,
    };
  const dir = mkdtempSync(join(tmpdir(), "lobu-doctor-nix-"));
  try {
    const expr = writeExpressions(dir, source);
    const res = await cli.run(
      "nix-instantiate",
      [
        ...(expr.flake ? ["--option", "extra-experimental-features", "nix-command flakes"] : []),
        "--eval",
        "--json",
        "--strict",
        expr.names,
        "--argstr",
        "prefix",
        "",
      ],
      { timeoutMs: 5 * 60_000 },
    );
    if (res.code !== 0)
      return {
        level: "fail",
        title: `package set ${section.nixpkgs} does not evaluate`,
        detail: `${res.timedOut ? "it took longer than 5 minutes" : errorLine(res.tail)}\ncheck packages.nixpkgs in lobu.toml (a path, <name>, channel:<name>, a tarball URL or a flake reference)`,
      };
    const count = (JSON.parse(res.stdout) as string[]).length;
    return { level: "ok", title: `package set ${section.nixpkgs}: ${count} top-level names` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
