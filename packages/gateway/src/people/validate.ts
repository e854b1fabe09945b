import { LobuError } from "@lobu/core";
import { canonicalPattern, firstDenied } from "../domain/host-patterns.ts";
import { publicSuffixProblem } from "../domain/public-suffixes.ts";

/** What people may type into the settings page, checked the same way for every channel. */

function invalid(message: string, hint?: string): LobuError {
  return new LobuError("invalid_setting", message, { status: 400, ...(hint ? { hint } : {}) });
}

/**
 * A domain a person allows for their own agent: `example.com` or
 * `*.example.com`. Allowing everything (`*`, `*.com`) is for admins in
 * lobu.toml, public suffixes (`*.co.uk`, `*.github.io`: everyone's sites) are
 * refused outright, and what the admin denies stays denied.
 */
export function userDomain(input: string, deny: readonly string[]): string {
  const notADomain = () =>
    invalid(
      `"${input}" is not a domain`,
      "Enter a host like api.github.com, or *.github.com for all of its subdomains.",
    );
  let pattern: string;
  try {
    pattern = canonicalPattern(input);
  } catch {
    throw notADomain();
  }
  const host = pattern.startsWith("*.") ? pattern.slice(2) : pattern;
  if (pattern === "*" || (pattern.startsWith("*.") && !host.includes("."))) {
    throw invalid(
      `"${pattern}" is too broad to allow from the settings page`,
      "Allow specific domains, or ask an admin to add the pattern to [network] allow in lobu.toml.",
    );
  }
  const suffix = publicSuffixProblem(pattern);
  if (suffix) {
    throw invalid(
      `${suffix}, so it cannot be allowed from the settings page`,
      "Allow the one site you need by its full name (e.g. alice.github.io).",
    );
  }
  const denied = firstDenied(host, deny);
  if (denied) {
    throw invalid(
      `${host} is blocked by the deny rule "${denied}"`,
      "An admin set this rule; allowing it here would have no effect.",
    );
  }
  return pattern;
}

const PACKAGE = /^[A-Za-z0-9_][A-Za-z0-9._+-]{0,99}$/;

/** A Nix package attribute name (`ripgrep`, `python312Packages.requests`). */
export function packageName(input: string): string {
  const name = input.trim();
  if (!PACKAGE.test(name)) {
    throw invalid(
      `"${input}" is not a Nix package name`,
      "Use the attribute name from search.nixos.org, e.g. ripgrep or python312Packages.requests.",
    );
  }
  return name;
}

const SECRET_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function secretName(input: string): string {
  if (!SECRET_NAME.test(input) || input.startsWith("provider.")) {
    throw invalid(
      `"${input}" cannot be used as a secret name`,
      "Use letters, digits, '.', '_' or '-'; provider keys are set in the Model section.",
    );
  }
  return input;
}
