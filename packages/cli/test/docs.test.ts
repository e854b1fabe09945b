import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LobuConfig, parseConfig } from "@lobu/core";
import { PLATFORMS, ProviderRegistry, platformsSetUp } from "@lobu/gateway";
import { MOCK_CLI_MODELS } from "@lobu/testkit";
import { describe, expect, it } from "vitest";
import { referenceProblems } from "../src/commands/doctor.ts";
import { buildProgram } from "../src/program.ts";

const ROOT = join(import.meta.dirname, "../../..");

/** README.md and every Markdown file under docs/, as paths relative to the repository. */
function markdownFiles(): string[] {
  const docs = readdirSync(join(ROOT, "docs"), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".md"))
    .map((f) => join("docs", f));
  return ["README.md", ...docs].sort();
}

/**
 * A snippet that shows only part of a file (say, one key of a table declared
 * elsewhere) says so with `<!-- toml: partial -->` on the line before its fence.
 * Keep such snippets rare: a reader copies what the docs show.
 */
const PARTIAL = "<!-- toml: partial -->";

interface Snippet {
  file: string;
  line: number;
  text: string;
  partial: boolean;
}

function tomlSnippets(file: string): Snippet[] {
  const lines = readFileSync(join(ROOT, file), "utf8").split("\n");
  const out: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})toml\b/.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence] = open;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !lines[j]!.trimStart().startsWith(fence!); j++)
      body.push(lines[j]!.slice(indent!.length));
    const before = lines
      .slice(0, i)
      .reverse()
      .find((l) => l.trim() !== "");
    out.push({ file, line: i + 1, text: body.join("\n"), partial: before?.trim() === PARTIAL });
    i = j;
  }
  return out;
}

const snippets = markdownFiles().flatMap(tomlSnippets);

/**
 * The environment a reader of the page would have: every variable it names, and
 * for a [platforms.<id>] section every variable docs/platforms/<id>.md names
 * (TELEGRAM_BOT_TOKEN, SUPPORT_BOT_TOKEN, …), each with a distinct stand-in of
 * the shape the platform checks, so that its section is checked past "not set".
 */
function envOf(file: string, config: LobuConfig): NodeJS.ProcessEnv {
  const pages = [file, ...Object.keys(config.platforms).map((id) => `docs/platforms/${id}.md`)];
  const names = new Set(
    pages.flatMap((p) =>
      existsSync(join(ROOT, p))
        ? (readFileSync(join(ROOT, p), "utf8").match(/\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b/g) ?? [])
        : [],
    ),
  );
  return Object.fromEntries(
    [...names]
      .filter((n) => !n.endsWith("_FILE")) // files to read: their inline variables stand in
      .map((n, i) => [
        n,
        STAND_INS.find(([pattern]) => pattern.test(n))?.[1](i) ?? `stand-in-${i}-0123456789`,
      ]),
  );
}

/** Values of the shape each platform checks, by the variable's name; `i` keeps them distinct. */
const STAND_INS: [RegExp, (i: number) => string][] = [
  [/(_URL|_API_ROOT)$/, () => "https://stand-in.example/"],
  [/PUBLIC_KEY$/, (i) => i.toString(16).padStart(64, "a")],
  [/(APP|TENANT|CLIENT)_ID$/, (i) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`],
  [/PHONE_NUMBER_ID$/, (i) => String(123456789012345 + i)],
  [
    /SERVICE_ACCOUNT_KEY$/,
    () =>
      JSON.stringify({
        client_email: "chat@stand-in.iam.gserviceaccount.com",
        private_key: "-----BEGIN PRIVATE KEY-----\nstand-in\n-----END PRIVATE KEY-----\n",
      }),
  ],
  [/(TELEGRAM_BOT|SUPPORT_BOT|TELEGRAM)_TOKEN$/, (i) => `${100000000 + i}:${"A".repeat(35)}`],
];

describe("lobu.toml snippets in the docs", () => {
  it("are found, and hardly any is marked partial", () => {
    expect(snippets.length).toBeGreaterThan(20);
    expect(snippets.filter((s) => s.partial).length).toBeLessThanOrEqual(3);
  });

  // An empty project folder: no skills folder of this repository's is picked up.
  const project = mkdtempSync(join(tmpdir(), "lobu-docs-"));
  for (const s of snippets.filter((s) => !s.partial)) {
    it(`${s.file}:${s.line} is a lobu.toml that \`lobu run\` accepts`, () => {
      const config = parseConfig(s.text, `${s.file}:${s.line}`);
      const where = `${s.file}:${s.line}`;
      expect(referenceProblems(config, join(project, "lobu.toml")), where).toBeUndefined();
      // [platforms.*] sections are each platform's to check (its strict schema).
      expect(() => platformsSetUp(PLATFORMS, config, envOf(s.file, config)), where).not.toThrow();
    });
  }
});

describe("the README", () => {
  it("names every lobu command, so a new user finds each one", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const program = buildProgram(() => async () => {});
    const missing = program.commands
      .map((c) => c.name())
      .filter((name) => name !== "help" && !readme.includes(`lobu ${name}`));
    expect(missing).toEqual([]);
  });

  it("has a mock provider (lobu-mock-llm) that lists the models its providers' turns use", () => {
    // `lobu doctor` warns about a default model the provider does not list.
    const providers = new ProviderRegistry(parseConfig(""), {});
    for (const id of ["anthropic", "openai"])
      expect(MOCK_CLI_MODELS).toContain(providers.get(id)?.defaultModel);
  });
});
