import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { join } from "node:path";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { Pod } from "kubernetes-models/v1/Pod";
import { Secret } from "kubernetes-models/v1/Secret";

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
 * deleted. What it does not do (scheduling, RuntimeClass handlers, enforcing
 * NetworkPolicies or security contexts) is listed in docs/sandboxing.md.
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
  #version = 1;
  url = "";

  constructor() {
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err) => {
        if (!res.headersSent) this.#status(res, 500, "InternalError", String(err));
      });
    });
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

  get(kind: Kind, namespace: string, name: string): Obj | undefined {
    return this.objects.get(`${kind}/${namespace}/${name}`);
  }

  async close(): Promise<void> {
    for (const p of this.#processes.values()) p.kill("SIGKILL");
    for (const w of this.#watchers) w.res.end();
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server.close(() => r()));
    rmSync(this.#root, { recursive: true, force: true });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
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
    // The volume mounted at the working directory is the PVC's host folder.
    const mount = (container.volumeMounts ?? []).find((v: Obj) => {
      const vol = pod.spec.volumes?.find((x: Obj) => x.name === v.name);
      return vol?.persistentVolumeClaim;
    });
    const claim = mount
      ? pod.spec.volumes.find((x: Obj) => x.name === mount.name).persistentVolumeClaim.claimName
      : undefined;
    const cwd = claim ? this.volumeDir(namespace, claim) : this.#root;
    for (const [k, v] of Object.entries(env)) if (mount && v === mount.mountPath) env[k] = cwd;
    const [cmd, ...args] = [...container.command, ...(container.args ?? [])];
    const child = spawn(cmd, args, { env, cwd, stdio: ["ignore", "inherit", "inherit"] });
    this.#processes.set(key, child);
    pod.status = {
      phase: "Running",
      containerStatuses: [{ name: container.name, ready: true, state: { running: {} } }],
    };
    pod.metadata.resourceVersion = String(++this.#version);
    this.#emit("pods", "MODIFIED", pod);
    child.on("exit", (code, signal) => {
      this.#processes.delete(key);
      this.#finish(key, pod, code ?? (signal ? 137 : 1), signal ? "Killed" : "Completed");
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
