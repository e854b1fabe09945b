import { DomainPattern, describeIssues, EnvName, LobuError } from "@lobu/core";
import { LineCounter, parseDocument } from "yaml";
import { z } from "zod";

/**
 * SKILL.md in the Agent Skills format (agentskills.io/specification): YAML
 * front matter between `---` lines, then Markdown instructions. The spec's
 * fields are checked as the spec says; what Lobu needs besides lives in
 * `metadata` under `lobu.*` keys, whose values are strings as the spec wants
 * (lists are space- or comma-separated), so other agents load the same file
 * and ignore them:
 *
 *     metadata:
 *       lobu.mcp: docs
 *       lobu.domains: api.example.com docs.example.com
 *       lobu.packages: jq ripgrep
 *       lobu.secrets: EXAMPLE_TOKEN
 *
 * Top-level keys other agents add (`version`, `disable-model-invocation`, ...)
 * are kept out of the way, not refused: a skill written for another agent loads.
 */

export const SKILL_FILE = "SKILL.md";

/** What a skill needs from the installation, each still subject to its policy. */
export interface SkillNeeds {
  /** MCP server ids the operator declares under [mcp.<id>]. */
  mcp: string[];
  /** Nix packages (handed to package provisioning). */
  packages: string[];
  /** Domain patterns allowed for the agent's egress, checked like lobu.toml's. */
  domains: string[];
  /** Environment variables (secrets) the skill's instructions use. */
  secrets: string[];
}

export interface SkillManifest {
  name: string;
  description: string;
  license?: string;
  compatibility?: string;
  /** The spec's `allowed-tools` (experimental): recorded, never pre-approves anything in Lobu. */
  allowedTools?: string;
  /** `metadata` without the `lobu.*` keys. */
  metadata: Record<string, string>;
  needs: SkillNeeds;
  /** The Markdown body: what the agent is told. */
  instructions: string;
  /** Top-level keys the spec does not define (other agents' extensions), ignored. */
  ignored: string[];
}

/**
 * Longest instructions (the Markdown body) a skill may have: they go into the
 * system prompt of every turn. The spec recommends far less (under 5000
 * tokens); details belong in files the skill ships, read when needed.
 */
export const MAX_INSTRUCTIONS = 100_000;

const SPEC_KEYS = ["name", "description", "license", "compatibility", "metadata", "allowed-tools"];

/** The spec's name: 1-64 of a-z, 0-9 and single inner hyphens. */
export const SkillName = z
  .string()
  .max(64, "at most 64 characters")
  .regex(
    /^[a-z0-9]+(-[a-z0-9]+)*$/,
    "use lower-case letters, digits and single hyphens, not at the start or end (e.g. pdf-tools)",
  );

const McpId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "an [mcp.<id>] id: lower-case letters, digits, '-', '_'");
const PackageName = z
  .string()
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}$/, "a package name like jq or python3Packages.numpy");

/**
 * A `lobu.*` value: a string of items separated by spaces or commas (or,
 * leniently, a YAML list), each checked; an error quotes the item.
 */
function listOf(item: z.ZodType<string, string>) {
  return z
    .union([z.string(), z.array(z.string())], {
      error: "a string of items separated by spaces or commas",
    })
    .transform((value, ctx) => {
      const items = (Array.isArray(value) ? value : value.split(/[\s,]+/)).filter(Boolean);
      return items.flatMap((raw) => {
        const checked = item.safeParse(raw);
        if (checked.success) return [checked.data];
        ctx.addIssue({ code: "custom", message: `"${raw}": ${checked.error.issues[0]?.message}` });
        return [];
      });
    });
}

const LobuNeeds = z.strictObject({
  "lobu.mcp": listOf(McpId).optional(),
  "lobu.packages": listOf(PackageName).optional(),
  "lobu.domains": listOf(DomainPattern).optional(),
  "lobu.secrets": listOf(EnvName).optional(),
});
const LOBU_KEYS = Object.keys(LobuNeeds.shape);

/** Spec metadata values are strings; numbers and booleans (`version: 1.0`) are read as text. */
const MetadataValue = z
  .union([z.string(), z.number(), z.boolean()], {
    error: "metadata values are strings in the Agent Skills spec",
  })
  .transform(String);

const FrontMatter = z.looseObject({
  name: SkillName,
  description: z
    .string({ error: "required: what the skill does and when to use it" })
    .trim()
    .min(1, "required: what the skill does and when to use it")
    .max(1024, "at most 1024 characters"),
  license: z.string().optional(),
  compatibility: z.string().min(1).max(500, "at most 500 characters").optional(),
  "allowed-tools": z
    .union([z.string(), z.array(z.string())])
    .transform((v) => (Array.isArray(v) ? v.join(" ") : v))
    .optional(),
  metadata: z
    .record(z.string(), z.unknown(), { error: "a map of string keys to string values" })
    .optional(),
});

function invalid(file: string, message: string): LobuError {
  return new LobuError(
    "skill_invalid",
    message.startsWith(file) ? message : `${file}: ${message}`,
    {
      hint: "See docs/skills.md for the SKILL.md format (Agent Skills front matter plus lobu.* metadata).",
    },
  );
}

/** Split a SKILL.md into its front matter text (with the line it starts on) and its body. */
function splitFrontMatter(text: string, file: string): { yaml: string; body: string } {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  if (lines[0]?.trim() !== "---")
    throw invalid(
      file,
      "must start with YAML front matter: a line `---`, name and description, `---`",
    );
  const end = lines.findIndex((l, i) => i > 0 && l.trimEnd() === "---");
  if (end === -1) throw invalid(file, "the front matter is not closed by a line `---`");
  return { yaml: lines.slice(1, end).join("\n"), body: lines.slice(end + 1).join("\n") };
}

/**
 * Values with `: ` that YAML cannot read unquoted (`description: Use when: ...`)
 * are common in skills written for other agents: quote them and try again.
 */
function quoteColonValues(yaml: string): string {
  return yaml.replace(
    /^([A-Za-z][\w.-]*):[ \t]+([^'"|>[{&*!#\s][^\n]*:[ \t][^\n]*)$/gm,
    (_m, key: string, value: string) => `${key}: ${JSON.stringify(value.trimEnd())}`,
  );
}

/** yaml's objects have no prototype; zod (and everyone else) expects plain ones. */
function plain(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  return value;
}

function parseYaml(yaml: string, file: string): unknown {
  const lines = new LineCounter();
  const read = (source: string, lineCounter?: LineCounter) =>
    parseDocument(source, { uniqueKeys: true, prettyErrors: false, lineCounter });
  let doc = read(yaml, lines);
  if (doc.errors.length) {
    const retry = read(quoteColonValues(yaml));
    if (retry.errors.length === 0) doc = retry;
  }
  const [error] = doc.errors;
  if (error) {
    // +1: the front matter starts on the line after the opening `---`.
    const line = lines.linePos(error.pos[0]).line;
    const where = line ? ` (line ${line + 1})` : "";
    throw invalid(file, `front matter is not valid YAML${where}: ${error.message.split("\n")[0]}`);
  }
  const data = plain(doc.toJS());
  if (data === null || typeof data !== "object" || Array.isArray(data))
    throw invalid(file, "front matter must be a YAML mapping (name: ..., description: ...)");
  return data;
}

function checked<T>(schema: z.ZodType<T>, value: unknown, file: string, prefix: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues.map((i) => ({
    ...i,
    path: [...prefix.split("."), ...i.path].filter(Boolean),
  }));
  throw invalid(file, describeIssues(file, issues));
}

/**
 * Parse and check a SKILL.md. `file` names it in every error (with the key);
 * `dirName`, when given, is the folder it lives in, which the spec says must
 * be the skill's name.
 */
export function parseSkillMd(
  text: string,
  opts: { file: string; dirName?: string },
): SkillManifest {
  const { file } = opts;
  const { yaml, body } = splitFrontMatter(text, file);
  const fm = checked(FrontMatter, parseYaml(yaml, file), file, "");
  if (opts.dirName !== undefined && opts.dirName !== fm.name)
    throw invalid(
      file,
      `name: "${fm.name}" does not match its folder "${opts.dirName}"; rename one of them (the Agent Skills spec requires they match)`,
    );
  const metadata: Record<string, string> = {};
  const lobu: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fm.metadata ?? {})) {
    if (key === "lobu" && value !== null && typeof value === "object")
      throw invalid(
        file,
        `metadata.lobu: metadata values are strings in the Agent Skills spec; write the keys flat: ${LOBU_KEYS.map((k) => `"${k}"`).join(", ")} (e.g. lobu.mcp: docs)`,
      );
    if (key.startsWith("lobu.") && !LOBU_KEYS.includes(key))
      throw invalid(
        file,
        `metadata.${key}: Lobu reads only ${LOBU_KEYS.join(", ")}; check the spelling`,
      );
    if (key.startsWith("lobu.")) lobu[key] = value;
    else metadata[key] = checked(MetadataValue, value, file, `metadata.${key}`);
  }
  const needs = checked(LobuNeeds, lobu, file, "metadata");
  const instructions = body.trim();
  if (instructions.length > MAX_INSTRUCTIONS)
    throw invalid(
      file,
      `the instructions are ${instructions.length} characters; at most ${MAX_INSTRUCTIONS} go into the system prompt: move details into files the skill ships (references/...) and say when to read them`,
    );
  return {
    name: fm.name,
    description: fm.description,
    ...(fm.license !== undefined ? { license: fm.license } : {}),
    ...(fm.compatibility !== undefined ? { compatibility: fm.compatibility } : {}),
    ...(fm["allowed-tools"] !== undefined ? { allowedTools: fm["allowed-tools"] } : {}),
    metadata,
    needs: {
      mcp: unique(needs["lobu.mcp"]),
      packages: unique(needs["lobu.packages"]),
      domains: unique(needs["lobu.domains"]),
      secrets: unique(needs["lobu.secrets"]),
    },
    instructions,
    ignored: Object.keys(fm).filter((k) => !SPEC_KEYS.includes(k)),
  };
}

const unique = (list: string[] | undefined): string[] => [...new Set(list ?? [])];
