import type { Command } from "commander";
import type { Runner } from "../program.ts";

/** The commands' code, loaded when one runs: it loads the gateway, which `--help` need not. */
const impl = () => import("./skills.ts");

const SKILLS_HELP = `
A skill is a folder with a SKILL.md (the Agent Skills format other agents use:
front matter with name and description, then instructions) plus the files it
ships. What it needs from Lobu goes in its metadata, as strings:

  metadata:
    lobu.mcp: docs                  MCP servers, declared by you under [mcp.<id>]
    lobu.domains: api.example.com   domains the agent may reach (checked like lobu.toml's)
    lobu.packages: jq               Nix packages
    lobu.secrets: EXAMPLE_TOKEN     environment variables it uses ([agents.<id>.secrets])

Skills live in the project's skills/<name>/ (next to lobu.toml, else the current
folder) and load when \`lobu run\` starts there. \`lobu skills add\` copies one in and
records its source, commit or version and digest in skills-lock.json. A skill never
changes tool policy or approvals: those stay in lobu.toml. See docs/skills.md.`;

const ADD_HELP = `
Sources:
  lobu skills add lobu                      a starter skill shipped with Lobu (lobu, docs-search)
  lobu skills add ./path/to/skill           a folder on this machine (copied)
  lobu skills add https://host/repo.git     a git repository (its only skill, or --path)
  lobu skills add git+https://host/repo#v1.2:skills/pdf   ref and folder in the URL
  lobu skills add some-package@1.0          an npm package (npm pack), or ./some-package-1.0.0.tgz

A name already installed is replaced only with --force; a name lobu.toml or the
project itself uses is refused.`;

/** `lobu skills ...`, registered on the program. */
export function skillsCommands(program: Command, run: Runner): void {
  const skills = program
    .command("skills")
    .description(
      "the project's skills: add (path, git URL, npm package, starter), list, remove, restore",
    )
    .addHelpText("after", SKILLS_HELP);
  const config = "config file (default: ./lobu.toml when present); its folder is the project";
  skills
    .command("add")
    .description(
      "install a skill into the project's skills/ folder and record it in skills-lock.json",
    )
    .argument(
      "<source>",
      "a starter skill's name, a folder, a git URL, or an npm package or tarball",
    )
    .option("-c, --config <file>", config)
    .option("--path <folder>", "the skill's folder inside the repository, package or folder")
    .option("--ref <ref>", "git: branch, tag or commit to install")
    .option("--git", "read <source> as a git URL")
    .option("--npm", "read <source> as an npm package spec")
    .option("--local", "read <source> as a folder on this machine")
    .option("-f, --force", "replace a skill of the same name installed before")
    .addHelpText("after", ADD_HELP)
    .action((source: string, o) => run(async () => (await impl()).skillsAddCommand(source, o))());
  skills
    .command("list")
    .description(
      "every skill with its source and needs (MCP servers, packages, domains, secrets), each checked against lobu.toml",
    )
    .option("-c, --config <file>", config)
    .option("--json", "print JSON")
    .action((o) => run(async () => (await impl()).skillsListCommand(o))());
  skills
    .command("remove")
    .description("delete an installed or project skill (its folder and skills-lock.json entry)")
    .argument("<name>", "the skill's name")
    .option("-c, --config <file>", config)
    .action((name: string, o) => run(async () => (await impl()).skillsRemoveCommand(name, o))());
  skills
    .command("restore")
    .description(
      "install again every skill of skills-lock.json whose folder is missing, pinned and checked by digest",
    )
    .option("-c, --config <file>", config)
    .action((o) => run(async () => (await impl()).skillsRestoreCommand(o))());
}
