/**
 * Wake latency per driver, through the whole product: from the API's 202 (the
 * message is accepted and queued) to the model request arriving at the mock LLM
 * (it has left the gateway's relay). The mock runs in this process, so both
 * times come from one clock.
 *
 * cold: the sandbox was stopped (process: no worker; virtual: session unloaded,
 * pool process running). warm: the sandbox is running and idle. The very first
 * message of a gateway also starts the virtual pool process: reported apart.
 *
 * `npm run bench -- sandbox-latency`; `LOBU_BENCH_DRIVERS=virtual` measures one driver
 * only (during development: the process tier's cold wakes take a minute).
 */
import { type BenchResult, type BenchRow, median, percentile, round, scaled } from "./lib.ts";
import { type BenchGateway, sleep, startBenchGateway } from "./sandbox-kit.ts";

const COLD = scaled(30, 15);
const WARM = scaled(40, 15);
const DRIVERS = (process.env.LOBU_BENCH_DRIVERS?.split(",") ?? ["process", "virtual"]) as Array<
  "process" | "virtual"
>;

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

async function measure(driver: "process" | "virtual"): Promise<BenchRow[]> {
  const b = await startBenchGateway(driver, `idle_timeout = "2h"\npool_size = 1\n`);
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
    const rows: BenchRow[] = [
      {
        metric: `${driver}: cold wake p50`,
        value: round(median(cold)),
        unit: "ms",
        note: driver === "process" ? "new sandboxed worker" : "session loaded into a running pool",
      },
      { metric: `${driver}: cold wake p99`, value: round(percentile(cold, 99)), unit: "ms" },
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
