import { isLobuError } from "@lobu/core";
import { describe, expect, it } from "vitest";
import { parseSkillMd } from "../../src/skills/skill-md.ts";

const FILE = "skills/pdf-tools/SKILL.md";

function md(front: string, body = "# PDF tools\n\nDo the thing.\n"): string {
  return `---\n${front}\n---\n${body}`;
}

/** The error parseSkillMd throws, as code and message. */
function failure(text: string, dirName?: string): { code: string; message: string } {
  try {
    parseSkillMd(text, { file: FILE, ...(dirName !== undefined ? { dirName } : {}) });
  } catch (err) {
    if (isLobuError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error("parsed without an error");
}

describe("SKILL.md", () => {
  it("reads the spec's fields, the lobu.* needs and the body", () => {
    const skill = parseSkillMd(
      md(
        [
          "name: pdf-tools",
          "description: Extract text from PDFs. Use when the user sends a PDF.",
          "license: Apache-2.0",
          "compatibility: Needs poppler",
          "allowed-tools: Bash(pdftotext:*) Read",
          "metadata:",
          "  author: example-org",
          "  version: 1.0",
          "  lobu.mcp: docs",
          "  lobu.domains: api.example.com, *.cdn.example.com",
          "  lobu.packages: poppler_utils   jq",
          "  lobu.secrets: EXAMPLE_TOKEN",
        ].join("\n"),
      ),
      { file: FILE, dirName: "pdf-tools" },
    );
    expect(skill).toEqual({
      name: "pdf-tools",
      description: "Extract text from PDFs. Use when the user sends a PDF.",
      license: "Apache-2.0",
      compatibility: "Needs poppler",
      allowedTools: "Bash(pdftotext:*) Read",
      // Spec metadata values are strings: a YAML number is read as its text.
      metadata: { author: "example-org", version: "1" },
      needs: {
        mcp: ["docs"],
        domains: ["api.example.com", "*.cdn.example.com"],
        packages: ["poppler_utils", "jq"],
        secrets: ["EXAMPLE_TOKEN"],
      },
      instructions: "# PDF tools\n\nDo the thing.",
      ignored: [],
    });
  });

  it("takes the minimal form, CRLF line endings, a byte-order mark and an empty body", () => {
    const text = "\uFEFF---\r\nname: a\r\ndescription: b\r\n---\r\n";
    expect(parseSkillMd(text, { file: FILE })).toMatchObject({
      name: "a",
      description: "b",
      metadata: {},
      needs: { mcp: [], domains: [], packages: [], secrets: [] },
      instructions: "",
    });
  });

  it("loads skills written for other agents: their extra keys are ignored, lists are accepted", () => {
    const skill = parseSkillMd(
      md(
        [
          "name: pdf-tools",
          "description: d",
          "disable-model-invocation: true",
          "version: 2",
          "allowed-tools: [Read, Grep]",
          "metadata:",
          "  lobu.domains: [api.example.com]",
        ].join("\n"),
      ),
      { file: FILE },
    );
    expect(skill.ignored).toEqual(["disable-model-invocation", "version"]);
    expect(skill.allowedTools).toBe("Read Grep");
    expect(skill.needs.domains).toEqual(["api.example.com"]);
  });

  it("quotes unquoted values with a colon, as other skill readers do", () => {
    const skill = parseSkillMd(
      md("name: pdf-tools\ndescription: Use when: the user mentions PDFs"),
      { file: FILE },
    );
    expect(skill.description).toBe("Use when: the user mentions PDFs");
  });

  it("refuses a file without front matter, or with it unclosed, naming the file", () => {
    expect(failure("# Just markdown\n")).toEqual({
      code: "skill_invalid",
      message: `${FILE}: must start with YAML front matter: a line \`---\`, name and description, \`---\``,
    });
    expect(failure("---\nname: a\ndescription: b\n").message).toBe(
      `${FILE}: the front matter is not closed by a line \`---\``,
    );
  });

  it("says where the YAML is broken, and refuses duplicate keys", () => {
    expect(failure(md("name: pdf-tools\ndescription: [unclosed")).message).toMatch(
      new RegExp(`^${FILE}: front matter is not valid YAML \\(line \\d+\\): `),
    );
    expect(failure(md("name: a\nname: b\ndescription: c")).message).toMatch(
      /front matter is not valid YAML.*[Mm]ap keys must be unique/,
    );
    expect(failure(md("- a\n- b")).message).toBe(
      `${FILE}: front matter must be a YAML mapping (name: ..., description: ...)`,
    );
  });

  it("checks the spec's name rules and names the key", () => {
    for (const name of ["PDF-Tools", "-pdf", "pdf-", "pdf--tools", "pdf_tools", "a".repeat(65)]) {
      const { code, message } = failure(md(`name: ${name}\ndescription: d`));
      expect(code).toBe("skill_invalid");
      expect(message).toMatch(new RegExp(`^${FILE}: name: `));
    }
    expect(failure(md("description: d")).message).toMatch(new RegExp(`^${FILE}: name: `));
  });

  it("requires the name to match its folder", () => {
    expect(failure(md("name: pdf-tools\ndescription: d"), "pdf").message).toBe(
      `${FILE}: name: "pdf-tools" does not match its folder "pdf"; rename one of them (the Agent Skills spec requires they match)`,
    );
  });

  it("requires a description of at most 1024 characters, and compatibility of at most 500", () => {
    expect(failure(md("name: a")).message).toBe(
      `${FILE}: description: required: what the skill does and when to use it`,
    );
    expect(failure(md('name: a\ndescription: "  "')).message).toBe(
      `${FILE}: description: required: what the skill does and when to use it`,
    );
    expect(failure(md(`name: a\ndescription: ${"x".repeat(1025)}`)).message).toBe(
      `${FILE}: description: at most 1024 characters`,
    );
    expect(failure(md(`name: a\ndescription: d\ncompatibility: ${"x".repeat(501)}`)).message).toBe(
      `${FILE}: compatibility: at most 500 characters`,
    );
  });

  it("refuses instructions too long for a system prompt", () => {
    expect(failure(md("name: a\ndescription: d", "x".repeat(100_001))).message).toMatch(
      new RegExp(`^${FILE}: the instructions are 100001 characters; at most 100000 go into`),
    );
  });

  it("names the metadata key whose value is wrong", () => {
    expect(failure(md("name: a\ndescription: d\nmetadata: [x]")).message).toBe(
      `${FILE}: metadata: a map of string keys to string values`,
    );
    expect(failure(md("name: a\ndescription: d\nmetadata:\n  owner:\n    team: x")).message).toBe(
      `${FILE}: metadata.owner: metadata values are strings in the Agent Skills spec`,
    );
    expect(
      failure(md("name: a\ndescription: d\nmetadata:\n  lobu.domains: https://api.example.com/"))
        .message,
    ).toBe(
      `${FILE}: metadata.lobu.domains: "https://api.example.com/": expected a domain like example.com or *.example.com`,
    );
    expect(
      failure(md("name: a\ndescription: d\nmetadata:\n  lobu.secrets: github_token")).message,
    ).toBe(
      `${FILE}: metadata.lobu.secrets: "github_token": environment variable names are upper-case letters, digits and '_'`,
    );
    expect(failure(md("name: a\ndescription: d\nmetadata:\n  lobu.mcp: Docs")).message).toMatch(
      new RegExp(`^${FILE}: metadata.lobu.mcp: "Docs": an \\[mcp.<id>\\] id`),
    );
  });

  it("refuses a misspelt lobu.* key and the nested form, saying what to write", () => {
    expect(failure(md("name: a\ndescription: d\nmetadata:\n  lobu.domain: x.com")).message).toBe(
      `${FILE}: metadata.lobu.domain: Lobu reads only lobu.mcp, lobu.packages, lobu.domains, lobu.secrets; check the spelling`,
    );
    expect(
      failure(md("name: a\ndescription: d\nmetadata:\n  lobu:\n    mcp: docs")).message,
    ).toMatch(new RegExp(`^${FILE}: metadata.lobu: metadata values are strings .*lobu.mcp: docs`));
  });
});
