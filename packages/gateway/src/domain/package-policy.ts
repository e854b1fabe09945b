/**
 * The operator's `[packages] allow` / `deny` lists, read the same wherever a
 * package name is judged: by the Nix provisioning before a build, and by a
 * skill's needs check (`lobu skills`, `lobu doctor`, startup warnings).
 */

/** Whether `name` matches a pattern of allow/deny (`*` matches any characters, dots included). */
function matchesPattern(name: string, pattern: string): boolean {
  const re = new RegExp(
    `^${pattern
      .split("*")
      .map((part) => part.replace(/[.+?^${}()|[\]\\-]/g, "\\$&"))
      .join(".*")}$`,
  );
  return re.test(name);
}

/** Why the operator's allow/deny lists keep `name` out, if they do. */
export function policyRefusal(
  name: string,
  policy: { readonly allow: readonly string[]; readonly deny: readonly string[] },
): string | undefined {
  const denied = policy.deny.find((p) => matchesPattern(name, p));
  if (denied) return `${name} is not provided on this gateway (packages.deny has "${denied}")`;
  if (policy.allow.length && !policy.allow.some((p) => matchesPattern(name, p)))
    return `${name} is not among the packages this gateway provides (packages.allow)`;
  return undefined;
}
