import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { Pod } from "kubernetes-models/v1/Pod";
import { Secret } from "kubernetes-models/v1/Secret";
import { type WebSocket, WebSocketServer } from "ws";

/**
 * A stand-in for a Kubernetes API server, for the `kubernetes` sandbox driver's
 * tests where no cluster can run. It speaks the real REST paths and JSON the
 * official client uses (create, get, delete, list with `watch=true`), and
 * validates every object created against the official OpenAPI schemas
 * (kubernetes-models' validate()): an object a real API server would refuse
 * for its shape is refused here with a 422 Status.
 *
 * A small kubelet plays pod lifecycles: a created pod is Pending, then
 * Running, its container's command runs as a host process (environment from
 * the pod, `secretKeyRef`s resolved, the first volume mount's path mapped to a
 * host folder per PVC), and it ends Succeeded/Failed when that exits or is
 * deleted. Every volume of a pod is a host folder: a PVC's per claim (kept
 * while the claim exists), an emptyDir's per pod; environment values and
 * exec arguments naming a mount path are mapped onto its folder.
 *
 * `pods/exec` is served as the API server does, over a WebSocket with the
 * channel protocols (`v5.channel.k8s.io`, `v4.channel.k8s.io`): byte 0 of each
 * frame is the stream (0 stdin, 1 stdout, 2 stderr, 3 the final v1 Status;
 * v5's 255 closes a stream), the command runs as a host process in the pod's
 * working directory, and a non-zero exit is a `NonZeroExitCode` Status with
 * the code in `details.causes`. The metrics API
 * (`/apis/metrics.k8s.io/v1beta1/namespaces/<ns>/pods`) reports each running
 * pod's memory from its process's resident set. What it does not do
 * (scheduling, RuntimeClass handlers, enforcing NetworkPolicies or security
 * contexts, running exec as the container's user) is listed in
 * docs/sandboxing.md.
 */

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects of any kind, validated by their schemas on create
type Obj = Record<string, any>;
type Kind = "pods" | "secrets" | "persistentvolumeclaims" | "networkpolicies";

const VALIDATORS: Record<Kind, (body: Obj) => void> = {
  pods: (b) => new Pod(b as never).validate(),
  secrets: (b) => new Secret(b as never).validate(),
  persistentvolumeclaims: (b) => new PersistentVolumeClaim(b as never).validate(),
  networkpolicies: (b) => new NetworkPolicy(b as never).validate(),
};

const PATH =
  /^\/(?:api\/v1|apis\/networking\.k8s\.io\/v1)\/namespaces\/([a-z0-9-]+)\/(pods|secrets|persistentvolumeclaims|networkpolicies)(?:\/([a-z0-9.-]+))?$/;

const EXEC = /^\/api\/v1\/namespaces\/([a-z0-9-]+)\/pods\/([a-z0-9.-]+)\/exec$/;
const METRICS = /^\/apis\/metrics\.k8s\.io\/v1beta1\/namespaces\/([a-z0-9-]+)\/pods$/;
const CHANNEL_PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

interface Watcher {
  kind: Kind;
  namespace: string;
  name?: string;
  res: ServerResponse;
}

export class FakeKubernetes {
  readonly objects = new Map<string, Obj>();
  /** Every object created, in order (what the tests inspect). */
  readonly created: Obj[] = [];
  /** Requests refused for an invalid object: `kind name: message`. */
  readonly refused: string[] = [];
  readonly #server: Server;
  readonly #watchers = new Set<Watcher>();
  readonly #processes = new Map<string, ChildProcess>();
  readonly #root = mkdtempSync("/tmp/lobu-fake-k8s-");
  readonly #ws = new WebSocketServer({
    noServer: true,
    handleProtocols: (offered) => CHANNEL_PROTOCOLS.find((p) => offered.has(p)) ?? false,
  });
  /** Every exec asked: the pod and the command as the client sent it. */
  readonly execs: { pod: string; command: string[] }[] = [];
  #version = 1;
  url = "";

  constructor() {
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err) => {
        if (!res.headersSent) this.#status(res, 500, "InternalError", String(err));
      });
    });
    this.#server.on("upgrade", (req, socket, head) => this.#upgrade(req, socket, head));
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.#server.listen(0, "127.0.0.1", r));
    const a = this.#server.address();
    this.url = `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}`;
    return this;
  }

  /** Host folder that stands for a PVC's volume. */
  volumeDir(namespace: string, claim: string): string {
    const dir = join(this.#root, namespace, claim);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** Host folder that stands for a pod's emptyDir volume. */
  emptyDir(namespace: string, pod: string, volume: string): string {
    const dir = join(this.#root, namespace, `pod-${pod}`, volume);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  get(kind: Kind, namespace: string, name: string): Obj | undefined {
    return this.objects.get(`${kind}/${namespace}/${name}`);
  }

  async close(): Promise<void> {
    for (const p of this.#processes.values()) p.kill("SIGKILL");
    for (const w of this.#watchers) w.res.end();
    for (const c of this.#ws.clients) c.terminate();
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server.close(() => r()));
    rmSync(this.#root, { recursive: true, force: true });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    const metrics = METRICS.exec(url.pathname);
    if (metrics && req.method === "GET") return this.#json(res, 200, this.#podMetrics(metrics[1]!));
    const m = PATH.exec(url.pathname);
    if (!m) return this.#status(res, 404, "NotFound", `no route ${url.pathname}`);
    const [, namespace, kind, name] = m as unknown as [string, string, Kind, string | undefined];
    const key = `${kind}/${namespace}/${name}`;
    if (req.method === "POST" && !name) {
      const body = JSON.parse(await readBody(req)) as Obj;
      const objName = body.metadata?.name as string | undefined;
      try {
        VALIDATORS[kind](body);
        if (!objName) throw new Error("metadata.name is required");
        if (body.metadata.namespace && body.metadata.namespace !== namespace)
          throw new Error(
            "the namespace of the object does not match the namespace of the request",
          );
      } catch (err) {
        this.refused.push(`${kind} ${objName}: ${(err as Error).message}`);
        return this.#status(res, 422, "Invalid", (err as Error).message);
      }
      const k = `${kind}/${namespace}/${objName}`;
      if (this.objects.has(k))
        return this.#status(res, 409, "AlreadyExists", `${kind} "${objName}" already exists`);
      body.metadata = {
        ...body.metadata,
        namespace,
        uid: `uid-${this.#version}`,
        resourceVersion: String(++this.#version),
        creationTimestamp: new Date().toISOString(),
      };
      if (kind === "pods") body.status = { phase: "Pending" };
      this.objects.set(k, body);
      this.created.push(structuredClone(body));
      this.#emit(kind, "ADDED", body);
      if (kind === "pods") setTimeout(() => this.#run(namespace, body), 20);
      return this.#json(res, 201, body);
    }
    if (req.method === "GET" && name) {
      const obj = this.objects.get(key);
      return obj
        ? this.#json(res, 200, obj)
        : this.#status(res, 404, "NotFound", `${kind} "${name}" not found`);
    }
    if (req.method === "GET" && url.searchParams.get("watch") === "true") {
      const field = url.searchParams.get("fieldSelector") ?? "";
      const only = /^metadata\.name=([a-z0-9.-]+)$/.exec(field)?.[1];
      res.writeHead(200, { "content-type": "application/json" });
      res.flushHeaders();
      const w: Watcher = { kind, namespace, res, ...(only ? { name: only } : {}) };
      this.#watchers.add(w);
      req.on("close", () => this.#watchers.delete(w));
      return;
    }
    if (req.method === "GET") {
      const prefix = `${kind}/${namespace}/`;
      const items = [...this.objects].filter(([k]) => k.startsWith(prefix)).map(([, o]) => o);
      return this.#json(res, 200, {
        kind: "List",
        apiVersion: "v1",
        metadata: { resourceVersion: String(this.#version) },
        items,
      });
    }
    if (req.method === "DELETE" && name) {
      const obj = this.objects.get(key);
      if (!obj) return this.#status(res, 404, "NotFound", `${kind} "${name}" not found`);
      this.objects.delete(key);
      if (kind === "pods") this.#processes.get(key)?.kill("SIGTERM");
      this.#emit(kind, "DELETED", obj);
      return this.#json(res, 200, obj);
    }
    return this.#status(res, 405, "MethodNotAllowed", `${req.method} ${url.pathname}`);
  }

  /** The kubelet: Pending → Running, run the container's command, then Succeeded/Failed. */
  #run(namespace: string, pod: Obj): void {
    const key = `pods/${namespace}/${pod.metadata.name}`;
    if (this.objects.get(key) !== pod) return;
    const container = pod.spec.containers[0];
    const env: Record<string, string> = {};
    for (const e of container.env ?? []) {
      if (e.value !== undefined) env[e.name] = e.value;
      const ref = e.valueFrom?.secretKeyRef;
      if (ref) {
        const secret = this.get("secrets", namespace, ref.name);
        const data = secret?.data?.[ref.key] ?? secret?.stringData?.[ref.key];
        if (data === undefined) {
          this.#finish(key, pod, 1, "CreateContainerConfigError");
          return;
        }
        env[e.name] = secret?.data ? Buffer.from(data, "base64").toString() : data;
      }
    }
    const mounts = this.#mounts(namespace, pod);
    const cwd = this.#hostPath(mounts, container.workingDir ?? "/") ?? this.#root;
    for (const [k, v] of Object.entries(env)) env[k] = this.#hostPath(mounts, v) ?? v;
    const [cmd, ...args] = [...container.command, ...(container.args ?? [])].map(
      (a: string) => this.#hostPath(mounts, a) ?? a,
    ) as [string, ...string[]];
    const child = spawn(cmd, args, { env, cwd, stdio: ["ignore", "inherit", "inherit"] });
    let ended = false;
    child.on("error", () => {
      // The runtime could not start the command: the container ends at once.
      if (ended) return;
      ended = true;
      this.#processes.delete(key);
      this.#finish(key, pod, 128, "StartError");
    });
    this.#processes.set(key, child);
    pod.status = {
      phase: "Running",
      containerStatuses: [{ name: container.name, ready: true, state: { running: {} } }],
    };
    pod.metadata.resourceVersion = String(++this.#version);
    this.#emit("pods", "MODIFIED", pod);
    child.on("exit", (code, signal) => {
      if (ended) return;
      ended = true;
      this.#processes.delete(key);
      this.#finish(key, pod, code ?? (signal ? 137 : 1), signal ? "Killed" : "Completed");
    });
  }

  /** The pod's volume mounts of the first container, each with its host folder. */
  #mounts(namespace: string, pod: Obj): { path: string; dir: string }[] {
    const out: { path: string; dir: string }[] = [];
    for (const m of pod.spec.containers[0].volumeMounts ?? []) {
      const vol = pod.spec.volumes?.find((x: Obj) => x.name === m.name);
      if (vol?.persistentVolumeClaim)
        out.push({
          path: m.mountPath,
          dir: this.volumeDir(namespace, vol.persistentVolumeClaim.claimName),
        });
      else if (vol?.emptyDir)
        out.push({ path: m.mountPath, dir: this.emptyDir(namespace, pod.metadata.name, m.name) });
    }
    return out;
  }

  /** `value` (a path, or a path inside a longer string) with mount paths mapped to host folders. */
  #hostPath(mounts: { path: string; dir: string }[], value: string): string | undefined {
    if (mounts.length === 0) return undefined;
    // One pass (longest path first), so a host folder put in is not mapped again.
    const paths = [...mounts].sort((x, y) => y.path.length - x.path.length);
    const any = paths.map((m) => escapeRegExp(m.path)).join("|");
    const out = value.replace(
      new RegExp(`(?<![\\w./-])(${any})((?:/[^\\s;'"&|)\\]]*)?)(?=$|[\\s;'"&|)\\]])`, "g"),
      (whole, path: string, rest: string) => {
        const dir = paths.find((m) => m.path === path)?.dir;
        if (!dir) return whole;
        // The fake's image is the host: a file the host has under a mount path (the
        // worker's runtime in a checkout under /tmp) and the volume does not is the image's.
        if (rest && !existsSync(dir + rest) && existsSync(whole)) return whole;
        return dir + rest;
      },
    );
    return out === value ? undefined : out;
  }

  /** PodMetrics of every running pod in `namespace`: memory from its process's resident set. */
  #podMetrics(namespace: string): Obj {
    const items: Obj[] = [];
    for (const [key, child] of this.#processes) {
      const [, ns, name] = key.split("/");
      if (ns !== namespace || child.pid === undefined) continue;
      const pod = this.objects.get(key);
      let rssKi = 0;
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
        rssKi = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
      } catch {
        continue;
      }
      items.push({
        metadata: { name, namespace, creationTimestamp: new Date().toISOString() },
        timestamp: new Date().toISOString(),
        window: "10s",
        containers: [
          {
            name: pod?.spec.containers[0].name ?? "worker",
            usage: { cpu: "0n", memory: `${rssKi}Ki` },
          },
        ],
      });
    }
    return {
      kind: "PodMetricsList",
      apiVersion: "metrics.k8s.io/v1beta1",
      metadata: {},
      items,
    };
  }

  /** `pods/exec` over a WebSocket with the channel protocol. */
  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? "/", "http://x");
    const m = EXEC.exec(url.pathname);
    const refuse = (code: number, text: string) => {
      socket.end(`HTTP/1.1 ${code} ${text}\r\nConnection: close\r\n\r\n`);
    };
    if (!m) {
      refuse(404, "Not Found");
      return;
    }
    const [, namespace, name] = m as unknown as [string, string, string];
    const pod = this.get("pods", namespace, name);
    const child = this.#processes.get(`pods/${namespace}/${name}`);
    if (!pod || !child) {
      refuse(404, "Not Found");
      return;
    }
    const command = url.searchParams.getAll("command");
    if (command.length === 0) {
      refuse(400, "Bad Request");
      return;
    }
    const container = url.searchParams.get("container");
    if (container && container !== pod.spec.containers[0].name) {
      refuse(400, "Bad Request");
      return;
    }
    this.#ws.handleUpgrade(req, socket, head, (ws) =>
      this.#exec(ws, namespace, pod, command, {
        stdin: url.searchParams.get("stdin") === "true",
        stdout: url.searchParams.get("stdout") === "true",
        stderr: url.searchParams.get("stderr") === "true",
      }),
    );
  }

  #exec(
    ws: WebSocket,
    namespace: string,
    pod: Obj,
    command: string[],
    streams: { stdin: boolean; stdout: boolean; stderr: boolean },
  ): void {
    this.execs.push({ pod: pod.metadata.name, command });
    const mounts = this.#mounts(namespace, pod);
    const container = pod.spec.containers[0];
    const cwd = this.#hostPath(mounts, container.workingDir ?? "/") ?? this.#root;
    const [cmd, ...args] = command.map((a) => this.#hostPath(mounts, a) ?? a) as [
      string,
      ...string[],
    ];
    const send = (stream: number, data: Buffer | string) => {
      if (ws.readyState !== ws.OPEN) return;
      ws.send(Buffer.concat([Buffer.from([stream]), Buffer.from(data)]));
    };
    const child = spawn(cmd, args, {
      cwd,
      stdio: [streams.stdin ? "pipe" : "ignore", "pipe", "pipe"],
    });
    child.stdout?.on("data", (d: Buffer) => streams.stdout && send(1, d));
    child.stderr?.on("data", (d: Buffer) => streams.stderr && send(2, d));
    child.stdin?.on("error", () => {});
    ws.on("message", (data: Buffer) => {
      if (data[0] === 0) child.stdin?.write(data.subarray(1));
      // v5: a close of stream 0 is the end of stdin.
      else if (data[0] === 255 && data[1] === 0 && ws.protocol === "v5.channel.k8s.io")
        child.stdin?.end();
    });
    ws.on("close", () => child.exitCode === null && child.kill("SIGKILL"));
    const done = (code: number | null, signal: NodeJS.Signals | null, error?: string) => {
      const exit = code ?? (signal ? 137 : 1);
      const status =
        exit === 0
          ? { metadata: {}, status: "Success" }
          : {
              metadata: {},
              status: "Failure",
              message: error ?? `command terminated with non-zero exit code: exit status ${exit}`,
              reason: "NonZeroExitCode",
              details: { causes: [{ reason: "ExitCode", message: String(exit) }] },
            };
      send(3, JSON.stringify(status));
      ws.close(1000);
    };
    let ended = false;
    child.on("error", (err) => {
      if (ended) return;
      ended = true;
      // What the runtime says when the executable is missing in the container.
      done(126, null, `exec failed: ${err.message}`);
    });
    child.on("close", (code, signal) => {
      if (ended) return;
      ended = true;
      done(code, signal);
    });
  }

  #finish(key: string, pod: Obj, exitCode: number, reason: string): void {
    pod.status = {
      phase: exitCode === 0 ? "Succeeded" : "Failed",
      containerStatuses: [
        { name: pod.spec.containers[0].name, state: { terminated: { exitCode, reason } } },
      ],
    };
    pod.metadata.resourceVersion = String(++this.#version);
    if (this.objects.get(key) === pod) this.#emit("pods", "MODIFIED", pod);
  }

  #emit(kind: Kind, type: string, obj: Obj): void {
    for (const w of this.#watchers) {
      if (w.kind !== kind || w.namespace !== obj.metadata.namespace) continue;
      if (w.name && w.name !== obj.metadata.name) continue;
      w.res.write(`${JSON.stringify({ type, object: obj })}\n`);
    }
  }

  #json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  }

  #status(res: ServerResponse, code: number, reason: string, message: string): void {
    this.#json(res, code, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message,
      reason,
      code,
    });
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      body += c;
    });
    req.on("end", () => resolve(body));
    req.on("error", reject);
  });
}
