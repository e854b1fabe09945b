import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { CliError } from "../client.ts";
import type { Runner } from "../program.ts";
import { type Conn, connect, withConn } from "./admin.ts";

const KEY_HELP =
  "the person's user key, platform:workspace:user (slack:T0123:U0456, telegram::12345, api:myapp:alice; api::alice for `lobu chat --user alice` and admin tokens)";

const personPath = (userKey: string) => `/api/v1/admin/people/${encodeURIComponent(userKey)}`;

/** `lobu people export|delete`: a person's data, over the REST API (docs/retention.md). */
export function peopleCommands(program: Command, run: Runner): void {
  const people = program
    .command("people")
    .description("export or erase everything the gateway holds about a person");
  withConn(
    people
      .command("export")
      .description("write a person's export bundle (JSON; secret names, never values)")
      .argument("<userKey>", KEY_HELP)
      .option("-o, --output <file>", "write the bundle here (mode 0600) instead of to stdout"),
  ).action((userKey: string, o: Conn & { output?: string }) =>
    run(async () => {
      const bundle = await connect(o).json<unknown>(`${personPath(userKey)}/export`);
      const text = `${JSON.stringify(bundle, null, 1)}\n`;
      if (!o.output) process.stdout.write(text);
      else {
        writeFileSync(o.output, text, { mode: 0o600 });
        console.log(`wrote the export of ${userKey} to ${o.output}`);
      }
      return 0;
    })(),
  );
  withConn(
    people
      .command("delete")
      .description(
        "erase a person: settings, secrets, sessions, conversations, their sandboxes and snapshots, audit and usage records (usage counters are kept anonymized)",
      )
      .argument("<userKey>", KEY_HELP)
      .option("--yes", "confirm: this cannot be undone"),
  ).action((userKey: string, o: Conn & { yes?: boolean }) =>
    run(async () => {
      if (!o.yes)
        throw new CliError(
          `this erases everything about ${userKey} and cannot be undone; run it again with --yes (export first with \`lobu people export ${userKey} -o file.json\`)`,
        );
      const r = await connect(o).json<{
        subject: string;
        erased: Record<string, Record<string, number>>;
      }>(personPath(userKey), { method: "DELETE" });
      if (o.json) console.log(JSON.stringify(r, null, 2));
      else {
        console.log(`erased ${userKey} (audited as ${r.subject}):`);
        for (const [kind, counts] of Object.entries(r.erased)) {
          const parts = Object.entries(counts).map(([what, n]) => `${n} ${what}`);
          console.log(`  ${kind}: ${parts.join(", ") || "nothing"}`);
        }
      }
      return 0;
    })(),
  );
}
