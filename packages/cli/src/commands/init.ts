import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { CliError } from "../client.ts";

const TOML = `# lobu.toml: Lobu gateway configuration. Every key is optional; see docs/configuration.md.
# Secrets never go here: put provider keys in .env (or the environment), or add them
# in the settings page / with PUT /api/v1/agents/<id>/secrets/provider.<provider>.

[gateway]
# host = "127.0.0.1"
# port = 8080
# Base URL people's browsers use to reach this gateway (settings links, webhooks).
# public_url = "https://lobu.example.com"
# data_dir = ".lobu"

[store]
# "sqlite" (embedded, one gateway) or "redis" (several gateways behind a load balancer).
# driver = "sqlite"
# redis_url = "redis://127.0.0.1:6379"

[sandbox]
# "auto" (process where it works, else virtual), "process" (namespaces + cgroups, Linux),
# "virtual" (just-bash, thousands of users per machine) or "host" (no isolation; needs
# allow_unsandboxed = true).
# driver = "auto"
# idle_timeout = "10m"
# max_concurrent = 16
# memory_mb = 1024
# disk_mb = 2048

[network]
# Domains every agent may reach through the egress proxy (deny by default).
# allow = ["pypi.org", "files.pythonhosted.org", "registry.npmjs.org"]

[agents.default]
name = "Assistant"
# provider = "anthropic"            # anthropic | openai | any [providers.*] id
# model = "claude-sonnet-4-5"
# models = []                       # other models the agent may call (the relay refuses the rest)
# max_output_tokens = 8192          # largest max_tokens of one model call
# max_parallel_model_calls = 4      # model calls one sandbox may have in flight
# system_prompt = "You are ..."
# tools = ["bash", "read", "write", "edit", "grep", "find", "ls"]
# skills = []                     # e.g. ["lobu", "docs-search"]: see Skills below
# group_routing = "per-user"        # or "per-channel" (one shared agent per channel)

[agents.default.network]
# allow = ["api.github.com", "*.githubusercontent.com"]

[agents.default.policy]
# default = "allow"                 # allow | ask | deny for tools not listed
# tools = { bash = "ask" }          # "ask" pauses for an approval button in the thread

# [providers.local]
# type = "openai"                   # any OpenAI-compatible endpoint (vLLM, Ollama, LiteLLM, ...)
# base_url = "http://127.0.0.1:11434/v1"
# api_key_env = "LOCAL_LLM_KEY"
# default_model = "qwen2.5-coder"

# Skills: folders with a SKILL.md (the Agent Skills format) in ./skills/<name>/ load
# automatically; see docs/skills.md. Starter skills shipped with Lobu:
#   npx lobu skills add lobu          # explains Lobu to the agent: requests, the sandbox, the proxy
#   npx lobu skills add docs-search   # searches your docs through the MCP server [mcp.docs]
# then give them to an agent (skills = ["lobu"] above) or let people install them
# from their settings page. "lobu skills list" shows what each needs.
#
# [mcp.docs]
# url = "https://docs.example.com/mcp"
#
# Or declare a skill here:
# [skills.github]
# description = "Work with GitHub repositories"
# instructions = "Use the GitHub REST API with $GITHUB_TOKEN ..."
# domains = ["api.github.com"]
`;

const ENV = `# Environment for \`lobu run\` (loaded from .env in the working directory).
# Provider keys stay in the gateway; workers only ever see placeholders.
# ANTHROPIC_API_KEY=
# ANTHROPIC_BASE_URL=https://api.anthropic.com
# OPENAI_API_KEY=
# OPENAI_BASE_URL=https://api.openai.com/v1

# 32 random bytes (base64) encrypting stored secrets; created in the data dir if unset.
# LOBU_MASTER_KEY=

# Slack (docs/platforms/slack.md)
# SLACK_BOT_TOKEN=
# SLACK_SIGNING_SECRET=

# Telegram (docs/platforms/telegram.md)
# TELEGRAM_BOT_TOKEN=

# WhatsApp Cloud API (docs/platforms/whatsapp.md); phone_number_id goes in [platforms.whatsapp]
# WHATSAPP_ACCESS_TOKEN=
# WHATSAPP_APP_SECRET=
# WHATSAPP_VERIFY_TOKEN=

# Discord (docs/platforms/discord.md)
# DISCORD_BOT_TOKEN=
# DISCORD_PUBLIC_KEY=
`;

/** The folder whose node_modules/.bin holds this `lobu` (the checkout or project that installed it). */
function installedIn(from = import.meta.dirname): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "node_modules", ".bin", "lobu"))) return dir;
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * How to run `lobu` in `root`: `npx lobu` finds it only in or below the folder
 * that installed it; elsewhere npx would fetch a package named "lobu" from the
 * registry instead, so the command names the installation.
 */
export function npxLobu(root: string, installed = installedIn()): string {
  if (!installed || root === installed || root.startsWith(`${installed}${sep}`)) return "npx lobu";
  const prefix = /^[\w./-]+$/.test(installed) ? installed : JSON.stringify(installed);
  return `npx --prefix ${prefix} lobu`;
}

export function initCommand(dir: string, opts: { force?: boolean }): number {
  const root = resolve(dir);
  if (existsSync(root) && !statSync(root).isDirectory())
    throw new CliError(`${root} exists and is not a directory`, 2);
  mkdirSync(root, { recursive: true });
  const files = [
    { path: join(root, "lobu.toml"), text: TOML, mode: 0o644 },
    { path: join(root, ".env"), text: ENV, mode: 0o600 },
  ];
  const existing = files.filter((f) => existsSync(f.path));
  if (existing.length && !opts.force) {
    throw new CliError(
      `${existing.map((f) => f.path).join(", ")} already exist; use --force to overwrite`,
      2,
    );
  }
  for (const f of files) {
    writeFileSync(f.path, f.text, { mode: f.mode });
    console.log(`wrote ${f.path}`);
  }
  // `lobu run` reads lobu.toml and .env from the directory it is started in.
  const fromHere = relative(process.cwd(), root);
  const rel = fromHere.startsWith("..") ? root : fromHere;
  const cd = rel ? `cd ${/^[\w./-]+$/.test(rel) ? rel : JSON.stringify(rel)} && ` : "";
  console.log(
    `\nNext: put a provider key in ${rel ? join(rel, ".env") : ".env"}, then \`${cd}${npxLobu(root)} run\` and, in another terminal there, \`${npxLobu(root)} chat\`.`,
  );
  return 0;
}
