/**
 * Egress proxy overhead: the same local upstream, reached directly and through the
 * proxy. Plain HTTP (absolute form), HTTPS with a placeholder swap (CONNECT, TLS
 * terminated with the Lobu CA and re-originated), SSE time to first byte, and
 * requests per second with keep-alive and concurrency.
 *
 * Client, proxy and upstream each get their own thread (this file, run as worker
 * threads in the roles `upstream` and `proxy`), so the proxy's cost is not hidden
 * in, or inflated by, sharing one event loop. Clients are Node's own agents with
 * `proxyEnv`, what a worker with NODE_USE_ENV_PROXY uses. Secrets live in a real
 * SQLite store. DNS is a fixed answer, so resolution cost is not included.
 *
 * The LLM relay (`/__lobu/llm/<provider>/…` on the same endpoint) is measured the
 * same way: an Anthropic streaming model call sent straight to the upstream with
 * the key, and sent to the relay with the turn's relay placeholder.
 */
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import {
  type BenchResult,
  type BenchRow,
  median,
  percentile,
  round,
  sample,
  scaled,
} from "./lib.ts";

const LATENCY_SAMPLES = scaled(2000, 400);
const WARMUP = scaled(300, 100);
const COLD_SAMPLES = scaled(200, 40);
const SSE_SAMPLES = scaled(400, 100);
const RPS_REQUESTS = scaled(15_000, 3000);
const RPS_ROUNDS = scaled(10, 4);
const CONCURRENCY = 32;
const HOST = "api.allowed.test";
const SANDBOX = "sb_bench";
/** The real key: direct calls send it, proxied ones a placeholder the proxy swaps for it. */
const SECRET = "sk-bench-0123456789abcdefghijklmnop";

interface UpstreamReady {
  httpPort: number;
  httpsPort: number;
  caPem: string;
}

interface ProxyReady {
  port: number;
  caPem: string;
  placeholder: string;
  /** The running turn's relay placeholder for the Anthropic key. */
  relayPlaceholder: string;
}

/** The model call both ways: a small streamed Anthropic request. */
const MODEL = "claude-bench";
const MODEL_CALL = JSON.stringify({
  model: MODEL,
  max_tokens: 64,
  stream: true,
  messages: [{ role: "user", content: "hello" }],
});

/** An Anthropic stream: start (input usage), a few deltas, the end (output usage). */
function anthropicStream(res: http.ServerResponse): void {
  res.writeHead(200, { "content-type": "text/event-stream" });
  const event = (type: string, data: object) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  res.write(
    event("message_start", {
      message: {
        id: "msg_1",
        role: "assistant",
        model: MODEL,
        usage: { input_tokens: 5, output_tokens: 1 },
      },
    }),
  );
  for (let i = 0; i < 5; i++)
    res.write(
      event("content_block_delta", { index: 0, delta: { type: "text_delta", text: `t${i}` } }),
    );
  res.write(
    event("message_delta", { delta: { stop_reason: "end_turn" }, usage: { output_tokens: 6 } }),
  );
  res.end(event("message_stop", {}));
}

async function runUpstream(dir: string): Promise<UpstreamReady> {
  const { loadOrCreateCa } = await import("../packages/gateway/src/proxy/ca.ts");
  const ca = await loadOrCreateCa(join(dir, "public-ca"));
  const leaf = await ca.leafFor(HOST);
  const body = JSON.stringify({ id: "msg_1", content: [{ type: "text", text: "ok" }] });
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    req.resume();
    req.on("end", () => {
      // A key that is not the real one means the swap did not happen: fail the run.
      const key = req.headers["x-api-key"];
      if (key !== undefined && key !== SECRET) {
        res.writeHead(401).end();
        return;
      }
      if (req.url === "/v1/messages") return anthropicStream(res);
      if (req.url === "/sse") {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write('event: message_start\ndata: {"type":"message_start"}\n\n');
        for (let i = 0; i < 5; i++) res.write(`event: delta\ndata: {"i":${i}}\n\n`);
        res.end("event: message_stop\ndata: {}\n\n");
        return;
      }
      res.writeHead(200, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
      });
      res.end(body);
    });
  };
  const plain = http.createServer({ keepAliveTimeout: 60_000 }, handler);
  const secure = https.createServer(
    { cert: leaf.certPem, key: leaf.keyPem, keepAliveTimeout: 60_000 },
    handler,
  );
  for (const s of [plain, secure]) {
    s.listen(0, "127.0.0.1");
    await once(s, "listening");
  }
  return {
    httpPort: (plain.address() as AddressInfo).port,
    httpsPort: (secure.address() as AddressInfo).port,
    caPem: ca.certPem,
  };
}

async function runProxy(dir: string, upstreamCa: string, httpPort: number): Promise<ProxyReady> {
  const [
    { createStore },
    { SecretStore },
    { PlaceholderRegistry },
    { loadOrCreateCa },
    { createEgressServer },
    { parseConfig },
    { ProviderRegistry, providerSecretName },
    { createProviderRelay },
    { ActiveTurns },
    { turnRelayCredentials },
    { default: pino },
  ] = await Promise.all([
    import("../packages/gateway/src/store/index.ts"),
    import("../packages/gateway/src/secrets/store.ts"),
    import("../packages/gateway/src/secrets/placeholders.ts"),
    import("../packages/gateway/src/proxy/ca.ts"),
    import("../packages/gateway/src/proxy/server.ts"),
    import("@lobu/core"),
    import("../packages/gateway/src/providers/registry.ts"),
    import("../packages/gateway/src/providers/relay.ts"),
    import("../packages/gateway/src/runtime/active-turns.ts"),
    import("../packages/gateway/src/runtime/relay-credentials.ts"),
    import("pino"),
  ]);
  const store = await createStore({ driver: "sqlite", path: join(dir, "lobu.db") });
  const secrets = new SecretStore(store.kv, randomBytes(32));
  const placeholders = new PlaceholderRegistry(store.kv);
  const ref = { name: "bench", scope: { kind: "installation" as const } };
  await secrets.set(ref, SECRET);
  const placeholder = await placeholders.issue({ sandboxId: SANDBOX, secret: ref, hosts: [HOST] });
  // The relay as the gateway wires it: the installation's Anthropic key, a turn
  // running in the sandbox, and the relay placeholder that turn's worker holds.
  const providerKey = {
    name: providerSecretName("anthropic"),
    scope: { kind: "installation" as const },
  };
  await secrets.set(providerKey, SECRET);
  const turns = new ActiveTurns({ revoker: placeholders });
  const turn = {
    turnId: "msg_bench.1",
    messageId: "msg_bench",
    agentId: "bench",
    userKey: "api::bench",
    origin: { platform: "api", workspace: "", channelId: "c", userId: "bench", isDirect: true },
    model: { provider: "anthropic", id: MODEL },
  };
  await turns.begin(SANDBOX, turn);
  const relayPlaceholder = await placeholders.issue({
    sandboxId: SANDBOX,
    secret: providerKey,
    hosts: ["127.0.0.1"],
    locations: ["header"],
    purpose: "relay",
    turn: { turnId: turn.turnId, userKey: turn.userKey },
  });
  const relay = createProviderRelay({
    providers: new ProviderRegistry(parseConfig(""), {
      ANTHROPIC_BASE_URL: `http://127.0.0.1:${httpPort}`,
    }),
    log: pino({ level: "silent" }),
    credentialFor: turnRelayCredentials({
      placeholders,
      secrets,
      turns,
      limits: () => ({ models: [MODEL], maxOutputTokens: 1000, maxParallelCalls: CONCURRENCY }),
    }),
    recordUsage: () => {},
  });
  const ca = await loadOrCreateCa(join(dir, "data"));
  const policy = {
    agentId: "bench",
    allow: [HOST],
    deny: [],
    allowPrivateRanges: ["127.0.0.1/32"],
  };
  const server = createEgressServer({
    identity: { kind: "sandbox", sandboxId: SANDBOX },
    policyFor: async (id) => (id === SANDBOX ? policy : null),
    placeholders,
    secrets,
    ca,
    resolver: async () => [{ address: "127.0.0.1", family: 4 }],
    upstreamCa,
    audit: () => {},
    internal: (req, res, ctx) => relay(req, res, ctx),
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    caPem: ca.certPem,
    placeholder,
    relayPlaceholder,
  };
}

if (!isMainThread && workerData?.role) {
  const { role, dir, upstreamCa, httpPort } = workerData as {
    role: string;
    dir: string;
    upstreamCa?: string;
    httpPort?: number;
  };
  const ready =
    role === "upstream" ? await runUpstream(dir) : await runProxy(dir, upstreamCa!, httpPort!);
  // CPU time of this thread on request: what a round of proxied requests cost the
  // proxy itself, whatever share of the cores the scheduler gave it.
  parentPort!.on("message", (m) => {
    if (m === "cpu") parentPort!.postMessage(process.threadCpuUsage());
  });
  parentPort!.postMessage(ready);
}

async function startRole<T>(data: Record<string, unknown>): Promise<{ worker: Worker; ready: T }> {
  const worker = new Worker(new URL(import.meta.url), { workerData: data });
  const [ready] = (await once(worker, "message")) as [T];
  return { worker, ready };
}

interface Target {
  agent: http.Agent;
  url: string;
  servername?: string;
  headers?: Record<string, string>;
  /** Sent as a POST when set. */
  body?: string;
}

function request(t: Target, opts: { firstByte?: boolean } = {}): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const u = new URL(t.url);
    const mod = u.protocol === "https:" ? https : http;
    const req = mod.request({
      agent: t.agent,
      host: u.hostname,
      port: u.port,
      path: `${u.pathname}${u.search}`,
      headers: t.headers,
      ...(t.body !== undefined ? { method: "POST" } : {}),
      ...(t.servername ? { servername: t.servername } : {}),
    });
    req.on("response", (res) => {
      if (res.statusCode !== 200) reject(new Error(`${t.url} → ${res.statusCode}`));
      let first = true;
      res.on("data", () => {
        if (first && opts.firstByte) resolve(performance.now() - t0);
        first = false;
      });
      res.on("end", () => resolve(performance.now() - t0));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(t.body);
  });
}

async function rps(t: Target, requests: number): Promise<number> {
  let left = requests;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (left-- > 0) await request(t);
    }),
  );
  return requests / ((performance.now() - t0) / 1000);
}

/**
 * Direct and proxied requests per second in alternating short rounds, so both see
 * the same neighbours on a shared machine; the ratio is the median of the rounds'.
 */
async function rpsPair(
  direct: Target,
  proxied: Target,
  proxyThread: Worker,
): Promise<{ direct: number; proxied: number; ratio: number; cpuUs: number }> {
  const per = Math.ceil(RPS_REQUESTS / RPS_ROUNDS);
  await rps(direct, per);
  await rps(proxied, per);
  const d: number[] = [];
  const p: number[] = [];
  const ratios: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < RPS_ROUNDS; i++) {
    d.push(await rps(direct, per));
    const before = await threadCpu(proxyThread);
    p.push(await rps(proxied, per));
    cpu.push((await threadCpu(proxyThread)) - before);
    ratios.push(p.at(-1)! / d.at(-1)!);
  }
  return {
    direct: median(d),
    proxied: median(p),
    ratio: median(ratios),
    cpuUs: median(cpu) / per,
  };
}

/** The proxy thread's CPU time so far (user + system), in microseconds. */
async function threadCpu(worker: Worker): Promise<number> {
  worker.postMessage("cpu");
  const [usage] = (await once(worker, "message")) as [NodeJS.CpuUsage];
  return usage.user + usage.system;
}

/** Latency samples of both targets, one request of each in turn (same noise for both). */
function latencyPair(
  a: Target,
  b: Target,
  count = LATENCY_SAMPLES,
  firstByte = false,
): Promise<[number[], number[]]> {
  return alternate(
    count,
    WARMUP,
    () => request(a, { firstByte }),
    () => request(b, { firstByte }),
  );
}

/** `count` timed runs of `a` and of `b`, taken in turn after `warmup` untimed ones. */
async function alternate(
  count: number,
  warmup: number,
  a: () => Promise<unknown>,
  b: () => Promise<unknown>,
): Promise<[number[], number[]]> {
  for (let i = 0; i < warmup; i++) {
    await a();
    await b();
  }
  const sa: number[] = [];
  const sb: number[] = [];
  for (let i = 0; i < count; i++) {
    sa.push(...(await sample(1, a)));
    sb.push(...(await sample(1, b)));
  }
  return [sa, sb];
}

function compare(rows: BenchRow[], what: string, direct: number[], proxied: number[]): void {
  const dm = median(direct);
  const pm = median(proxied);
  const d99 = percentile(direct, 99);
  const p99 = percentile(proxied, 99);
  rows.push(
    { metric: `${what}: median direct`, value: dm, unit: "ms" },
    { metric: `${what}: median via proxy`, value: pm, unit: "ms" },
    { metric: `${what}: added median`, value: pm - dm, unit: "ms", note: `×${round(pm / dm)}` },
    { metric: `${what}: p99 direct`, value: d99, unit: "ms" },
    { metric: `${what}: p99 via proxy`, value: p99, unit: "ms" },
    { metric: `${what}: added p99`, value: p99 - d99, unit: "ms", note: `×${round(p99 / d99)}` },
  );
}

export default async function proxyBench(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), "lobu-proxy-bench-"));
  const workers: Worker[] = [];
  try {
    const up = await startRole<UpstreamReady>({ role: "upstream", dir });
    workers.push(up.worker);
    const px = await startRole<ProxyReady>({
      role: "proxy",
      dir,
      upstreamCa: up.ready.caPem,
      httpPort: up.ready.httpPort,
    });
    workers.push(px.worker);
    const { httpPort, httpsPort } = up.ready;
    const proxyUrl = `http://127.0.0.1:${px.ready.port}`;

    const agentOpts = { keepAlive: true, maxSockets: CONCURRENCY };
    const agents = {
      directHttp: new http.Agent(agentOpts),
      proxyHttp: new http.Agent({ ...agentOpts, proxyEnv: { HTTP_PROXY: proxyUrl } }),
      directHttps: new https.Agent({ ...agentOpts, ca: up.ready.caPem }),
      proxyHttps: new https.Agent({
        ...agentOpts,
        ca: px.ready.caPem,
        proxyEnv: { HTTPS_PROXY: proxyUrl },
      }),
    };
    const plainDirect: Target = {
      agent: agents.directHttp,
      url: `http://127.0.0.1:${httpPort}/v1/x`,
    };
    const plainProxy: Target = { agent: agents.proxyHttp, url: `http://${HOST}:${httpPort}/v1/x` };
    // Direct HTTPS sends the real key; through the proxy the placeholder is swapped for it.
    const tlsDirect: Target = {
      agent: agents.directHttps,
      url: `https://127.0.0.1:${httpsPort}/v1/x`,
      servername: HOST,
      headers: { "x-api-key": SECRET },
    };
    const tlsProxy: Target = {
      agent: agents.proxyHttps,
      url: `https://${HOST}:${httpsPort}/v1/x`,
      headers: { "x-api-key": px.ready.placeholder },
    };
    const sse = (t: Target): Target => ({ ...t, url: t.url.replace("/v1/x", "/sse") });
    // A model call as a worker makes it: to the provider with the key, or to the relay with its placeholder.
    const modelHeaders = { "content-type": "application/json", "anthropic-version": "2023-06-01" };
    const relayDirect: Target = {
      agent: agents.directHttp,
      url: `http://127.0.0.1:${httpPort}/v1/messages`,
      headers: { ...modelHeaders, "x-api-key": SECRET },
      body: MODEL_CALL,
    };
    const relayed: Target = {
      agent: agents.directHttp,
      url: `${proxyUrl}/__lobu/llm/anthropic/v1/messages`,
      headers: { ...modelHeaders, "x-api-key": px.ready.relayPlaceholder },
      body: MODEL_CALL,
    };

    const latencyRows: BenchRow[] = [];
    compare(latencyRows, "http", ...(await latencyPair(plainDirect, plainProxy)));
    compare(latencyRows, "https+swap, warm", ...(await latencyPair(tlsDirect, tlsProxy)));
    // A new connection per request: TCP + TLS; through the proxy also CONNECT, policy and the MITM handshake.
    const cold = (t: Target, ca: string, proxied: boolean) => () =>
      request({
        ...t,
        agent: new https.Agent({
          keepAlive: false,
          ca,
          ...(proxied ? { proxyEnv: { HTTPS_PROXY: proxyUrl } } : {}),
        }),
      });
    compare(
      latencyRows,
      "https+swap, new connection",
      ...(await alternate(
        COLD_SAMPLES,
        30,
        cold(tlsDirect, up.ready.caPem, false),
        cold(tlsProxy, px.ready.caPem, true),
      )),
    );

    // A new connection per request, but the client keeps its TLS sessions (Node's agents
    // do): the handshakes with the proxy's intercepting endpoint and the upstream resume.
    const resuming = (ca: string, proxied: boolean) =>
      new https.Agent({
        keepAlive: false,
        ca,
        ...(proxied ? { proxyEnv: { HTTPS_PROXY: proxyUrl } } : {}),
      });
    const directResuming = resuming(up.ready.caPem, false);
    const proxyResuming = resuming(px.ready.caPem, true);
    compare(
      latencyRows,
      "https+swap, new connection, resumed session",
      ...(await alternate(
        COLD_SAMPLES,
        30,
        () => request({ ...tlsDirect, agent: directResuming }),
        () => request({ ...tlsProxy, agent: proxyResuming }),
      )),
    );
    directResuming.destroy();
    proxyResuming.destroy();

    const sseRows: BenchRow[] = [];
    compare(
      sseRows,
      "sse ttfb http",
      ...(await latencyPair(sse(plainDirect), sse(plainProxy), SSE_SAMPLES, true)),
    );
    compare(
      sseRows,
      "sse ttfb https+swap",
      ...(await latencyPair(sse(tlsDirect), sse(tlsProxy), SSE_SAMPLES, true)),
    );

    const relayRows: BenchRow[] = [];
    compare(
      relayRows,
      "llm relay, streamed model call",
      ...(await latencyPair(relayDirect, relayed)),
    );

    const rpsRows: BenchRow[] = [];
    for (const [what, direct, proxied] of [
      ["http", plainDirect, plainProxy],
      ["https+swap", tlsDirect, tlsProxy],
      ["llm relay", relayDirect, relayed],
    ] as const) {
      const r = await rpsPair(direct, proxied, px.worker);
      rpsRows.push(
        { metric: `${what}: rps direct`, value: r.direct, unit: "req/s", note: "median of rounds" },
        {
          metric: `${what}: rps via proxy`,
          value: r.proxied,
          unit: "req/s",
          note: "median of rounds",
        },
        {
          metric: `${what}: via proxy / direct`,
          value: r.ratio * 100,
          unit: "%",
          note: `median of ${RPS_ROUNDS} alternating rounds`,
        },
        {
          metric: `${what}: proxy thread CPU per request`,
          value: r.cpuUs,
          unit: "µs",
          note: "median of rounds; independent of the share of cores it got",
        },
      );
    }

    for (const a of Object.values(agents)) a.destroy();
    const meta = {
      latencySamples: LATENCY_SAMPLES,
      coldSamples: COLD_SAMPLES,
      sseSamples: SSE_SAMPLES,
      rpsRequests: RPS_REQUESTS,
      rpsRounds: RPS_ROUNDS,
      method: "direct and proxied measured in turn (request by request, or in alternating rounds)",
      concurrency: CONCURRENCY,
      threads: "client, proxy and upstream each in their own thread",
    };
    return [
      { name: "proxy-latency", rows: latencyRows, meta },
      { name: "proxy-sse", rows: sseRows, meta },
      { name: "proxy-throughput", rows: rpsRows, meta },
      { name: "proxy-relay", rows: relayRows, meta },
    ];
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
    rmSync(dir, { recursive: true, force: true });
  }
}
