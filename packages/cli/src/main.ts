import { isLobuError } from "@lobu/core";
import { Command, CommanderError } from "commander";
import { CliError } from "./client.ts";
import { adminCommands } from "./commands/admin.ts";
import { chatCommand } from "./commands/chat.ts";
import { doctorCommand } from "./commands/doctor.ts";
import { initCommand } from "./commands/init.ts";
import { runCommand } from "./commands/run.ts";

const program = new Command();
program
  .name("lobu")
  .description(
    "Lobu: a sandboxed AI agent for every person on your team, inside the chat tools you already use.",
  )
  .version("0.1.0")
  .showHelpAfterError("(run with --help for usage)")
  .exitOverride();

let exitCode = 0;
const run = (fn: () => number | Promise<number>) => async () => {
  exitCode = await fn();
};

program
  .command("init")
  .description("write a commented lobu.toml and .env into a directory")
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
  .action((o) => run(() => runCommand(o))());

program
  .command("chat")
  .description(
    "chat with an agent in the terminal; with --message, send one message, print the reply and exit",
  )
  .option("-g, --gateway <url>", "gateway URL (default $LOBU_GATEWAY_URL or http://127.0.0.1:8080)")
  .option("-t, --token <token>", "API token (default $LOBU_TOKEN or <data dir>/admin-token)")
  .option("-d, --data-dir <dir>", "data dir to read the admin token from (default .lobu)")
  .option("-a, --agent <id>", "agent id", "default")
  .option("-u, --user <id>", "who you are (default: your login name)")
  .option("--channel <id>", "conversation channel; one sandbox per agent, user and channel", "cli")
  .option("-m, --message <text>", "send one message and exit (exit 1 if the agent fails)")
  .option("-v, --verbose", "show tool calls in one-shot mode")
  .action((o) => run(() => chatCommand(o))());

program
  .command("doctor")
  .description("check this machine and configuration: Node, data dir, store, providers, sandboxing")
  .option("-c, --config <file>", "config file (default: ./lobu.toml when present)")
  .option("-d, --data-dir <dir>", "data dir (default .lobu)")
  .option("--env-file <file>", "environment file to load (default ./.env when present)")
  .option("--offline", "skip provider reachability checks")
  .action((o) => run(() => doctorCommand(o))());

const rotateMasterKey = async (
  ...a: Parameters<typeof import("./commands/master-key.ts").rotateMasterKeyCommand>
) => (await import("./commands/master-key.ts")).rotateMasterKeyCommand(...a);
program
  .command("master-key")
  .description("manage the key that encrypts stored secrets")
  .command("rotate")
  .description(
    "re-encrypt every stored secret under a new master key (stop the gateways first; resumable)",
  )
  .option("-c, --config <file>", "config file (default: ./lobu.toml when present)")
  .option("-d, --data-dir <dir>", "data dir (default .lobu)")
  .option("--env-file <file>", "environment file to load (default ./.env when present)")
  .action((o) => run(() => rotateMasterKey(o))());

adminCommands(program, run);

try {
  await program.parseAsync(process.argv);
  process.exitCode = exitCode;
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else if (err instanceof CliError) {
    process.stderr.write(`lobu: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else if (isLobuError(err)) {
    process.stderr.write(`lobu: ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ""}`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`lobu: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
