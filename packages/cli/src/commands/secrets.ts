import { text } from "node:stream/consumers";
import type { Command } from "commander";
import { CliError } from "../client.ts";
import type { Runner } from "../program.ts";
import { type Conn, connect, table, withConn } from "./admin.ts";

interface SecretMeta {
  name: string;
  version?: number;
  updatedAt?: number;
  hint?: string;
}

type Scoped = Conn & { agent?: string };

const AGENT_OPTION = [
  "-a, --agent <id>",
  "an agent's secret ([agents.<id>.secrets]) instead of an installation secret",
] as const;

const path = (o: Scoped, name?: string) =>
  `${o.agent ? `/api/v1/agents/${encodeURIComponent(o.agent)}` : "/api/v1"}/secrets${name ? `/${encodeURIComponent(name)}` : ""}`;

/**
 * The value comes on stdin, never as an argument: arguments are seen by every
 * user in `ps` and kept in shell history. One trailing newline (of `echo` or a
 * file) is dropped.
 */
async function readValue(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write("value (end with Ctrl+D): ");
  const value = (await text(process.stdin)).replace(/\r?\n$/, "");
  if (!value)
    throw new CliError("no value on stdin: pipe it in, e.g. `lobu secrets set NAME < token.txt`");
  return value;
}

/** `lobu secrets list|set|delete`: stored secrets over the REST API (docs/api.md). */
export function secretsCommands(program: Command, run: Runner): void {
  const secrets = program
    .command("secrets")
    .description(
      "installation and agent secrets (encrypted in the store; the gateway never shows a value again)",
    );
  withConn(
    secrets
      .command("list")
      .description("list secrets: names, versions and masked hints")
      .option(...AGENT_OPTION),
  ).action((o: Scoped) =>
    run(async () => {
      const r = await connect(o).json<{ secrets: SecretMeta[] }>(path(o));
      if (o.json) console.log(JSON.stringify(r.secrets, null, 2));
      else
        table(
          r.secrets.map((s) => ({
            ...s,
            updated: s.updatedAt ? new Date(s.updatedAt).toISOString() : "",
          })),
          ["name", "version", "hint", "updated"],
        );
      return 0;
    })(),
  );
  withConn(
    secrets
      .command("set")
      .description("set or rotate a secret, reading its value from stdin")
      .argument("<name>", "the secret's name (NAME in lobu.toml's secret:NAME references)")
      .option(...AGENT_OPTION),
  ).action((name: string, o: Scoped) =>
    run(async () => {
      const value = await readValue();
      const r = await connect(o).json<SecretMeta>(path(o, name), {
        method: "PUT",
        body: JSON.stringify({ value }),
      });
      console.log(
        o.json ? JSON.stringify(r, null, 2) : `stored ${r.name} (version ${r.version}, ${r.hint})`,
      );
      return 0;
    })(),
  );
  withConn(
    secrets
      .command("delete")
      .description("revoke a secret")
      .argument("<name>", "the secret's name (see `lobu secrets list`)")
      .option(...AGENT_OPTION),
  ).action((name: string, o: Scoped) =>
    run(async () => {
      await connect(o).json(path(o, name), { method: "DELETE" });
      console.log(`deleted ${name}`);
      return 0;
    })(),
  );
}
