import { Command, type Help } from "commander";
import { adminCommands } from "./commands/admin.ts";
import { chatCommand } from "./commands/chat.ts";
import { deployCommands } from "./commands/deploy.ts";
import { initCommand } from "./commands/init.ts";
import { peopleCommands } from "./commands/people.ts";
import { secretsCommands } from "./commands/secrets.ts";
import { skillsCommands } from "./commands/skills-commands.ts";

/** Wraps a command's action: its result is the process's exit code. */
export type Runner = (fn: () => number | Promise<number>) => () => Promise<void>;

/**
 * In `lobu --help`, a command group shows its subcommands (`sandboxes
 * list|stop|reset|exec`), so no command is only found by asking the group.
 */
function subcommandTerm(cmd: Command, help: Help): string {
  const subs = cmd.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden);
  if (subs.length === 0) return help.subcommandTerm(cmd);
  return `${cmd.name()} ${subs.map((c) => c.name()).join("|")}`;
}

/** Every command in the tree, depth first. */
export function allCommands(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(allCommands)];
}

/** Options a command cannot run without say so in its --help. */
function markRequired(program: Command): void {
  for (const cmd of allCommands(program))
    for (const opt of cmd.options)
      if (opt.mandatory && !opt.description.endsWith("(required)"))
        opt.description = `${opt.description} (required)`;
}

/**
 * `run`, `doctor`, `master-key` and `skills` load their code (and with it the
 * gateway) when they run: `--help` and the commands that only talk to a
 * gateway over HTTP start in a fraction of the time.
 */
export function buildProgram(run: Runner): Command {
  const program = new Command();
  const defaultHelp = program.createHelp();
  program
    .name("lobu")
    .description(
      "Lobu: a sandboxed AI agent for every person on your team, inside the chat tools you already use.",
    )
    .version("0.1.0")
    .configureHelp({ subcommandTerm: (cmd) => subcommandTerm(cmd, defaultHelp) })
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();

  program
    .command("init")
    .description("write a commented lobu.toml and .env into a directory (created if missing)")
    .argument("[dir]", "target directory", ".")
    .option("-f, --force", "overwrite existing files")
    .action((dir: string, o: { force?: boolean }) => run(() => initCommand(dir, o))());

  program
    .command("run")
    .description("start the gateway (embedded SQLite store unless lobu.toml says redis)")
    .option("-c, --config <file>", "config file (default: ./lobu.toml when present)")
    .option("-p, --port <port>", "HTTP port (default 8080; 0 picks a free one)")
    .option("--host <host>", "interface to listen on (default 127.0.0.1)")
    .option("-d, --data-dir <dir>", "where state, volumes and keys live (default .lobu)")
    .option("--env-file <file>", "environment file to load (default ./.env when present)")
    .addHelpText(
      "after",
      `
One gateway per data dir: a second \`lobu run\` on the same data dir is refused
(naming the first). SIGTERM or SIGINT stops it cleanly (sandboxes stopped,
volumes unmounted); a second signal, 2 s or more after the first, exits at once
(one that also reaches it through npm, sent to the whole process group, is the same request).
Logs go to stderr: readable lines on a terminal, JSON lines otherwise
(LOBU_LOG_FORMAT=json|pretty to choose), after the startup summary.`,
    )
    .action((o) => run(async () => (await import("./commands/run.ts")).runCommand(o))());

  program
    .command("chat")
    .description(
      "chat with an agent in the terminal; with --message, send one message, print the reply and exit",
    )
    .option(
      "-g, --gateway <url>",
      "gateway URL (default $LOBU_GATEWAY_URL or http://127.0.0.1:8080)",
    )
    .option("-t, --token <token>", "API token (default $LOBU_TOKEN or <data dir>/admin-token)")
    .option("-d, --data-dir <dir>", "data dir to read the admin token from (default .lobu)")
    .option("-a, --agent <id>", "agent id", "default")
    .option("-u, --user <id>", "who you are (default: your login name)")
    .option(
      "--channel <id>",
      "conversation channel; one sandbox per agent, user and channel",
      "cli",
    )
    .option("-m, --message <text>", "send one message and exit (exit 1 if the agent fails)")
    .option("-v, --verbose", "show tool calls in one-shot mode")
    .addHelpText(
      "after",
      `
While a reply streams, Ctrl+C or /stop stops it (the tool it runs is killed);
/stop all also drops your messages queued behind it. Ctrl+C with nothing
running, or a second time, quits. \`lobu stop <message or conversation id>\`
does the same from another terminal.`,
    )
    .action((o) => run(() => chatCommand(o))());

  program
    .command("doctor")
    .description(
      "check this machine and configuration: Node, config, data dir, store, providers, platforms, skills, sandboxing",
    )
    .option("-c, --config <file>", "config file (default: ./lobu.toml when present)")
    .option("-d, --data-dir <dir>", "data dir (default .lobu)")
    .option("--env-file <file>", "environment file to load (default ./.env when present)")
    .option("--offline", "skip provider reachability checks")
    .addHelpText(
      "after",
      `
Each line is ✓ (fine), ! (a warning: Lobu runs, but read it) or ✗ (a problem).
Exit code: 0 when there is no problem (warnings included), 1 when there is one.`,
    )
    .action((o) => run(async () => (await import("./commands/doctor.ts")).doctorCommand(o))());

  program
    .command("master-key")
    .description("manage the key that encrypts stored secrets")
    .command("rotate")
    .description(
      "re-encrypt every stored secret under a new master key (refused while a gateway uses the data dir; resumable)",
    )
    .option("-c, --config <file>", "config file (default: ./lobu.toml when present)")
    .option("-d, --data-dir <dir>", "data dir (default .lobu)")
    .option("--env-file <file>", "environment file to load (default ./.env when present)")
    .action((o) =>
      run(async () => (await import("./commands/master-key.ts")).rotateMasterKeyCommand(o))(),
    );

  adminCommands(program, run);
  peopleCommands(program, run);
  secretsCommands(program, run);
  skillsCommands(program, run);
  deployCommands(program, run);
  markRequired(program);
  return program;
}
