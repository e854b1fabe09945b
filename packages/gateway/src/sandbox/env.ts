import { LobuError } from "@lobu/core";
import type { SandboxSpec } from "./driver.ts";

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SANDBOX_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Sandbox ids name cgroups, files and log fields: keep them boring. */
export function checkSandboxId(id: string): void {
  if (!SANDBOX_ID.test(id))
    throw new LobuError("sandbox_id_invalid", `invalid sandbox id ${JSON.stringify(id)}`, {
      status: 500,
      hint: "Sandbox ids are 1-128 characters of letters, digits, '.', '_' and '-'.",
    });
}

/**
 * The complete environment of a worker: nothing from the gateway's own (which
 * holds real provider keys), only defaults, the spec's non-secret env and the
 * driver's LOBU_* values, which always win.
 */
export function workerEnv(
  spec: SandboxSpec,
  defaults: Record<string, string>,
  forced: Record<string, string>,
): Record<string, string> {
  const env: Record<string, string> = { LANG: "C.UTF-8", PI_OFFLINE: "1", ...defaults };
  for (const [key, value] of Object.entries(spec.env)) {
    if (!NAME.test(key) || value.includes("\0"))
      throw new LobuError(
        "sandbox_env_invalid",
        `invalid environment variable ${JSON.stringify(key)}`,
        {
          status: 500,
          hint: "Names are letters, digits and '_' (not starting with a digit); values cannot contain NUL.",
        },
      );
    env[key] = value;
  }
  return { ...env, ...forced, LOBU_SANDBOX_ID: spec.id };
}
