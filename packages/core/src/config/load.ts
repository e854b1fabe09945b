import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parse as parseToml, TomlError } from "smol-toml";
import type { z } from "zod";
import { LobuError } from "../errors.ts";
import { LobuConfig } from "./schema.ts";

export interface LoadedConfig {
  config: LobuConfig;
  /** Absolute path of the file read, or undefined when running on defaults. */
  path: string | undefined;
}

function formatPath(path: PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join("");
}

/** Turn zod issues into lines a person can act on: `file: key: what is expected`. */
export function describeIssues(file: string, issues: z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const key = formatPath(issue.path);
      if (issue.code === "unrecognized_keys") {
        const where = key ? ` in [${key}]` : "";
        return `${file}: unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}${where}`;
      }
      return `${file}: ${key || "(top level)"}: ${issue.message}`;
    })
    .join("\n");
}

export function parseConfig(text: string, file = "lobu.toml"): LobuConfig {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (err) {
    const where = err instanceof TomlError ? ` (line ${err.line}, column ${err.column})` : "";
    throw new LobuError(
      "config_invalid",
      `${file}: not valid TOML${where}: ${(err as Error).message.split("\n")[0]}`,
      {
        hint: "Fix the syntax error; `lobu init` writes a commented example.",
      },
    );
  }
  const result = LobuConfig.safeParse(raw);
  if (!result.success) {
    throw new LobuError("config_invalid", describeIssues(file, result.error.issues), {
      hint: "See docs/configuration.md for every key and its type.",
    });
  }
  return result.data;
}

/**
 * Read `lobu.toml`. An explicitly given path must exist; without one, `./lobu.toml`
 * is used when present and defaults otherwise.
 */
export function loadConfig(explicitPath?: string, cwd = process.cwd()): LoadedConfig {
  const path = resolve(cwd, explicitPath ?? "lobu.toml");
  if (!existsSync(path)) {
    if (explicitPath) {
      throw new LobuError("config_missing", `config file not found: ${path}`, {
        hint: "Run `lobu init` to create one, or omit --config to run on defaults.",
      });
    }
    return { config: LobuConfig.parse({}), path: undefined };
  }
  return { config: parseConfig(readFileSync(path, "utf8"), path), path };
}
