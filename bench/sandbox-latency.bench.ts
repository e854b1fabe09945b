/**
 * Wake latency per driver, through the whole product: from the API's 202 (the
 * message is accepted and queued) to the model request arriving at the mock LLM
 * (it has left the gateway's relay). The mock runs in this process, so both
 * times come from one clock.
 *
 * new conversation: the first message of a new person (its sandbox and volume are made).
 * cold: the sandbox was stopped (process: no worker; virtual: session unloaded,
 * pool process running; pooled: the `process` driver with `process_mode =
 * "pooled"`, whose cold wake is the virtual one). warm: the sandbox is running and idle. The very first
 * message of a gateway also starts the virtual pool process: reported apart.
 *
 * `npm run bench -- sandbox-latency`; `LOBU_BENCH_DRIVERS=virtual` (or `pooled`) measures one tier
 * only (during development: the process tier's cold wakes take a minute).
 */
import type { RecordedRequest } from "@lobu/testkit";
import { type BenchResult, type BenchRow, median, percentile, round, scaled } from "./lib.ts";
import { type BenchGateway, sleep, startBenchGateway } from "./sandbox-kit.ts";

const COLD = scaled(30, 15);
const WARM = scaled(40, 15);
const DRIVERS = (process.env.LOBU_BENCH_DRIVERS?.split(",") ?? [
  "process",
  "virtual",
  "pooled",
]) as Tier[];

async function timeToModel(b: BenchGateway, user: string, text: string): Promise<number> {
  const before = b.llm.requests.length;
  const { messageId, acceptedAt } = await b.post(user, text);
  const [req] = (await b.llm.waitForRequests(before + 1, { timeoutMs: 60_000 })).slice(before);
  // Let the turn finish before the next sample.
  for (;;) {
    const res = await b.gw.api(`/api/v1/messages/${messageId}`);
    if (((await res.json()) as { status: string }).status === "done") break;
    await sleep(10);
  }
  return req!.at - acceptedAt;
}

/** Which driver a tier runs on, and its lobu.toml lines. */
const TIERS = {
  process: { driver: "process", toml: "" },
  virtual: { driver: "virtual", toml: "" },
  pooled: { driver: "process", toml: `process_mode = "pooled"\n` },
} as const;
type Tier = keyof typeof TIERS;

/** Messages starting with `cmd` get one bash call (`ls`) before the reply. */
const commandOnCmd = (req: RecordedRequest) =>
  req.lastUserText.startsWith("cmd") && req.toolResults.length === 0
    ? { toolCalls: [{ name: "bash", input: { command: "ls -a" } }] }
    : { text: "done" };

/** From the 202 to the model request carrying the first bash result (the command ran). */
async function timeToCommand(b: BenchGateway, user: string, text: string): Promise<number> {
  const before = b.llm.requests.length;
  const { messageId, acceptedAt } = await b.post(user, text);
  const reqs = await b.llm.waitForRequests(before + 2, { timeoutMs: 60_000 });
  const withResult = reqs.slice(before).find((r) => r.toolResults.length > 0)!;
  for (;;) {
    const res = await b.gw.api(`/api/v1/messages/${messageId}`);
    if (((await res.json()) as { status: string }).status === "done") break;
    await sleep(10);
  }
  return withResult.at - acceptedAt;
}

async function measure(driver: Tier): Promise<BenchRow[]> {
  const tier = TIERS[driver];
  const b = await startBenchGateway(
    tier.driver,
    `${tier.toml}idle_timeout = "2h"\npool_size = 1\n`,
    commandOnCmd,
  );
  try {
    const first = await timeToModel(b, "first", "first message");
    await sleep(500);
    const cold: number[] = [];
    const warm: number[] = [];
    for (let i = 0; i < COLD; i++) {
      const sb = (await b.sandboxes()).find((s) => s.key.userId === "first")!;
      await b.stop(sb.id);
      cold.push(await timeToModel(b, "first", `cold ${i}`));
    }
    for (let i = 0; i < WARM; i++) warm.push(await timeToModel(b, "first", `warm ${i}`));
    // A new person: the sandbox and its volume are made on this wake.
    const fresh: number[] = [];
    for (let i = 0; i < COLD; i++) fresh.push(await timeToModel(b, `new-${i}`, `hello ${i}`));
    // Cold wake, then one bash command: in the pooled tier its sandbox starts here.
    const coldCommand: number[] = [];
    for (let i = 0; i < COLD; i++) {
      const sb = (await b.sandboxes()).find((s) => s.key.userId === "first")!;
      await b.stop(sb.id);
      coldCommand.push(await timeToCommand(b, "first", `cmd cold ${i}`));
    }
    const rows: BenchRow[] = [
      {
        metric: `${driver}: cold wake p50`,
        value: round(median(cold)),
        unit: "ms",
        note: driver === "process" ? "new sandboxed worker" : "session loaded into a running pool",
      },
      {
        metric: `${driver}: cold wake + first bash command p50`,
        value: round(median(coldCommand)),
        unit: "ms",
        note:
          driver === "pooled"
            ? "includes starting the command's bwrap sandbox"
            : "to the model request carrying the result",
      },
      { metric: `${driver}: cold wake p99`, value: round(percentile(cold, 99)), unit: "ms" },
      {
        metric: `${driver}: new conversation p50`,
        value: round(median(fresh)),
        unit: "ms",
        note: "first message of a new person: sandbox record and volume made on this wake",
      },
      { metric: `${driver}: warm p50`, value: round(median(warm)), unit: "ms" },
      { metric: `${driver}: warm p99`, value: round(percentile(warm, 99)), unit: "ms" },
    ];
    rows.push({
      metric: `${driver}: first message after gateway start`,
      value: first,
      unit: "ms",
      note: driver === "virtual" ? "includes starting the pool process" : "one sample",
    });
    return rows;
  } finally {
    await b.close();
  }
}

export default async function bench(): Promise<BenchResult> {
  const rows: BenchRow[] = [];
  for (const driver of DRIVERS) rows.push(...(await measure(driver)));
  return {
    name: "sandbox-latency",
    rows,
    meta: {
      cold: COLD,
      warm: WARM,
      measured: "API 202 → first model request received by the mock LLM",
    },
  };
}
