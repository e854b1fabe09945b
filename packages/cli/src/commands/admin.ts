import { ApprovalChoice, CapabilityChoice } from "@lobu/core";
import type { Command } from "commander";
import { CliError, describeStop, GatewayClient, resolveClient } from "../client.ts";
import type { Runner } from "../program.ts";

export interface Conn {
  gateway?: string;
  token?: string;
  dataDir?: string;
  json?: boolean;
}

interface AgentRow extends Record<string, unknown> {
  provider?: string;
  model?: string;
  effective?: { provider?: string; model?: string };
}

export function connect(o: Conn): GatewayClient {
  const { url, token } = resolveClient(o);
  return new GatewayClient(url, token);
}

export function withConn(cmd: Command): Command {
  return cmd
    .option(
      "-g, --gateway <url>",
      "gateway URL (default $LOBU_GATEWAY_URL or http://127.0.0.1:8080)",
    )
    .option(
      "-t, --token <token>",
      "admin API token (default $LOBU_TOKEN or <data dir>/admin-token)",
    )
    .option("-d, --data-dir <dir>", "data dir to read the admin token from (default .lobu)")
    .option("--json", "print JSON");
}

export function table(rows: Record<string, unknown>[], cols: string[]): void {
  const cells = rows.map((r) => cols.map((c) => String(r[c] ?? "")));
  const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  console.log(cols.map((c, i) => c.toUpperCase().padEnd(widths[i]!)).join("  "));
  for (const r of cells) console.log(r.map((v, i) => v.padEnd(widths[i]!)).join("  "));
}

const mb = (bytes: unknown) =>
  typeof bytes === "number" ? `${(bytes / 2 ** 20).toFixed(1)}M` : "-";
const ago = (ms: unknown) => {
  if (typeof ms !== "number" || !ms) return "-";
  const s = Math.round((Date.now() - ms) / 1000);
  return s < 60
    ? `${s}s`
    : s < 3600
      ? `${Math.round(s / 60)}m`
      : s < 86400
        ? `${Math.round(s / 3600)}h`
        : `${Math.round(s / 86400)}d`;
};

type Listed = Record<string, unknown>;

/** Every sandbox, a page at a time (the gateway measures each one it lists). */
async function allSandboxes(client: GatewayClient): Promise<Listed[]> {
  const all: Listed[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const query = new URLSearchParams({ limit: "500", ...(cursor ? { cursor } : {}) });
    const page = await client.json<{ sandboxes: Listed[]; next?: string }>(
      `/api/v1/sandboxes?${query}`,
    );
    all.push(...page.sandboxes);
    pages++;
    cursor = page.next;
    if (cursor) process.stderr.write(`\rlisted ${all.length} sandboxes…`);
  } while (cursor);
  if (pages > 1) process.stderr.write("\n"); // ends the progress line
  return all;
}

/** Operator commands that talk to a running gateway over the REST API. */
export function adminCommands(program: Command, run: Runner): void {
  const sandboxes = program
    .command("sandboxes")
    .description("list, stop, reset sandboxes, or run a command in one");
  withConn(
    sandboxes.command("list").description("list sandboxes with state, age, memory and disk"),
  ).action((o: Conn) =>
    run(async () => {
      const list = await allSandboxes(connect(o));
      if (o.json) console.log(JSON.stringify(list, null, 2));
      else {
        table(
          list.map((s) => {
            const usage = (s.usage ?? {}) as Record<string, unknown>;
            return {
              id: s.id,
              state: `${s.state}${s.busy ? "*" : ""}`,
              conversation: s.label,
              age: ago(s.createdAt),
              active: ago(s.lastActiveAt),
              // A virtual sandbox shares its pool process's memory.
              memory: usage.pool ? `${mb(usage.memoryBytes)} (pool)` : mb(usage.memoryBytes),
              disk: mb(usage.diskBytes),
              // Several gateways: the one running it (each lists every gateway's sandboxes).
              gateway: typeof s.owner === "string" ? s.owner : "",
            };
          }),
          [
            "id",
            "state",
            "conversation",
            "age",
            "active",
            "memory",
            "disk",
            ...(list.some((s) => s.owner) ? ["gateway" as const] : []),
          ],
        );
      }
      return 0;
    })(),
  );
  withConn(
    sandboxes
      .command("stop")
      .description("stop a running sandbox (its volume is kept)")
      .argument("<id>", "sandbox id (see `lobu sandboxes list`)"),
  ).action((id: string, o: Conn) =>
    run(async () => {
      const r = await connect(o).json<{ stopped: boolean }>(
        `/api/v1/sandboxes/${encodeURIComponent(id)}/stop`,
        { method: "POST" },
      );
      console.log(r.stopped ? `stopped ${id}` : `${id} was not running`);
      return 0;
    })(),
  );
  withConn(
    sandboxes
      .command("reset")
      .description(
        "stop a sandbox and restore a clean environment (volume restored from its last good snapshot, or emptied with --wipe)",
      )
      .argument("<id>", "sandbox id (see `lobu sandboxes list`)")
      .option("--wipe", "delete the volume entirely"),
  ).action((id: string, o: Conn & { wipe?: boolean }) =>
    run(async () => {
      const r = await connect(o).json<Record<string, unknown>>(
        `/api/v1/sandboxes/${encodeURIComponent(id)}/reset`,
        {
          method: "POST",
          body: JSON.stringify({ wipe: Boolean(o.wipe) }),
        },
      );
      if (o.json) console.log(JSON.stringify(r, null, 2));
      else {
        const restored = r.wiped ? "wiped (empty workspace)" : `restored ${String(r.restored)}`;
        const revoked = Number(r.revokedPlaceholders ?? 0);
        console.log(
          `reset ${id}: ${restored}${r.stopped ? "; it was running and was stopped" : ""}; ${revoked} placeholder${revoked === 1 ? "" : "s"} revoked. Its user is told with their next message.`,
        );
      }
      return 0;
    })(),
  );

  withConn(
    sandboxes
      .command("exec")
      .description(
        "run a program inside a running sandbox as its agent user, and exit with its exit code (process, docker and kubernetes drivers)",
      )
      .argument("<id>", "sandbox id (see `lobu sandboxes list`)")
      .argument(
        "[argv...]",
        "the program and its arguments, after -- (passed as they are, no shell)",
      )
      .option(
        "-s, --shell <command>",
        "run this command line with /bin/sh -c instead (pipes, ;, $VARS)",
      )
      .option("--timeout <seconds>", "give up after this many seconds (1-600)", "60")
      .addHelpText(
        "after",
        `
Examples:
  lobu sandboxes exec sb_123 -- ls -la "my notes"
  lobu sandboxes exec sb_123 --shell 'du -sh * | sort -h'
Exit code: the command's own (128+N when signal N ended it); 124 when it ran out of time.`,
      ),
  ).action((id: string, argv: string[], o: Conn & { timeout: string; shell?: string }) =>
    run(async () => {
      const timeoutSec = Number(o.timeout);
      if (!Number.isInteger(timeoutSec) || timeoutSec < 1 || timeoutSec > 600) {
        throw new CliError("--timeout must be a whole number of seconds between 1 and 600", 2);
      }
      if ((o.shell === undefined) === (argv.length === 0))
        throw new CliError(
          argv.length
            ? "give either --shell '<command line>' or a program after --, not both"
            : "nothing to run: lobu sandboxes exec <id> -- <program> [args...], or --shell '<command line>'",
          2,
        );
      const r = await connect(o).json<{ exitCode: number | null; output: string }>(
        `/api/v1/sandboxes/${encodeURIComponent(id)}/exec`,
        {
          method: "POST",
          body: JSON.stringify(
            o.shell !== undefined ? { command: o.shell, timeoutSec } : { argv, timeoutSec },
          ),
        },
      );
      if (o.json) console.log(JSON.stringify(r, null, 2));
      else process.stdout.write(r.output);
      if (r.exitCode === null) {
        process.stderr.write(
          `lobu: the command did not finish within ${timeoutSec}s and was killed\n`,
        );
        return 124;
      }
      return r.exitCode;
    })(),
  );

  const token = program.command("token").description("manage REST API tokens");
  withConn(
    token
      .command("create")
      .description("create an API token (shown once)")
      .requiredOption("-n, --name <name>", "what the token is for")
      .option("-r, --role <role>", "admin, client or user (see docs/api.md, Roles)", "client")
      .option(
        "--namespace <ns>",
        "client: the namespace of api users it acts for (default: its own); user: its user's",
      )
      .option("--user <id>", "user tokens: the one api user it acts for")
      .option("--expires-in <seconds>", "refuse the token after this many seconds"),
  ).action(
    (
      o: Conn & {
        name: string;
        role: string;
        namespace?: string;
        user?: string;
        expiresIn?: string;
      },
    ) =>
      run(async () => {
        if (o.role !== "admin" && o.role !== "client" && o.role !== "user")
          throw new CliError("--role must be admin, client or user", 2);
        const expiresInSec = o.expiresIn === undefined ? undefined : Number(o.expiresIn);
        if (expiresInSec !== undefined && !(Number.isInteger(expiresInSec) && expiresInSec >= 60))
          throw new CliError("--expires-in must be a whole number of seconds, at least 60", 2);
        const r = await connect(o).json<{ token: string; id: string }>("/api/v1/tokens", {
          method: "POST",
          body: JSON.stringify({
            name: o.name,
            role: o.role,
            ...(o.namespace !== undefined ? { namespace: o.namespace } : {}),
            ...(o.user !== undefined ? { user: o.user } : {}),
            ...(expiresInSec !== undefined ? { expiresInSec } : {}),
          }),
        });
        console.log(o.json ? JSON.stringify(r, null, 2) : r.token);
        return 0;
      })(),
  );
  withConn(token.command("list").description("list API tokens")).action((o: Conn) =>
    run(async () => {
      const r = await connect(o).json<{ tokens: Record<string, unknown>[] }>("/api/v1/tokens");
      if (o.json) console.log(JSON.stringify(r.tokens, null, 2));
      else
        table(
          r.tokens.map((t) => ({ ...t, created: new Date(Number(t.createdAt)).toISOString() })),
          ["id", "name", "role", "namespace", "user", "created"],
        );
      return 0;
    })(),
  );
  withConn(
    token
      .command("revoke")
      .description("revoke an API token")
      .argument("<id>", "token id (see `lobu token list`)"),
  ).action((id: string, o: Conn) =>
    run(async () => {
      await connect(o).json(`/api/v1/tokens/${encodeURIComponent(id)}`, { method: "DELETE" });
      console.log(`revoked ${id}`);
      return 0;
    })(),
  );

  withConn(
    program
      .command("answer")
      .description("answer an agent's question or approval request")
      .argument("<requestId>", "the request id shown with the question or approval")
      .argument(
        "<choice>",
        `${ApprovalChoice.options.join(", ")} (approvals), ${CapabilityChoice.options.join(", ")} (capability requests) or a question's option id`,
      )
      .option("--text <text>", "free-text answer"),
  ).action((requestId: string, choice: string, o: Conn & { text?: string }) =>
    run(async () => {
      await connect(o).answer(requestId, choice, o.text);
      console.log(`answered ${requestId}: ${choice}`);
      return 0;
    })(),
  );

  withConn(
    program
      .command("stop")
      .description(
        "stop a running agent turn at once (it does not wait in the conversation's queue)",
      )
      .argument(
        "<id>",
        "a message id (msg_…, stops that message's turn or drops it if queued) or a conversation id (stops what runs there)",
      )
      .option("--all", "also drop the messages queued behind it"),
  ).action((id: string, o: Conn & { all?: boolean }) =>
    run(async () => {
      const outcome = await connect(o).stop(id, Boolean(o.all));
      console.log(o.json ? JSON.stringify(outcome, null, 2) : describeStop(outcome));
      return 0;
    })(),
  );

  withConn(
    program
      .command("settings-link")
      .description(
        "print a one-time link that opens the settings page as a user (single use, 10 minutes)",
      )
      .requiredOption("-u, --user <id>", "the user")
      .option("--channel <id>", "conversation channel", "cli")
      .option("-a, --agent <id>", "agent (default agent otherwise)"),
  ).action((o: Conn & { user: string; channel: string; agent?: string }) =>
    run(async () => {
      const r = await connect(o).json<{ url: string }>("/api/v1/settings-links", {
        method: "POST",
        body: JSON.stringify({
          user: o.user,
          channel: o.channel,
          ...(o.agent ? { agent: o.agent } : {}),
        }),
      });
      console.log(o.json ? JSON.stringify(r, null, 2) : r.url);
      return 0;
    })(),
  );

  withConn(
    program
      .command("agents")
      .description("list agents with the provider and model their turns use"),
  ).action((o: Conn) =>
    run(async () => {
      const r = await connect(o).json<{ agents: AgentRow[] }>("/api/v1/agents");
      if (o.json) console.log(JSON.stringify(r.agents, null, 2));
      else
        table(
          r.agents.map((a) => ({
            ...a,
            // An agent without its own provider or model uses the gateway's: say which.
            provider:
              a.provider ??
              (a.effective?.provider
                ? `${a.effective.provider} (default)`
                : "none (no provider key)"),
            model: a.model ?? (a.effective?.model ? `${a.effective.model} (default)` : "-"),
          })),
          ["id", "name", "provider", "model", "source"],
        );
      return 0;
    })(),
  );
}
