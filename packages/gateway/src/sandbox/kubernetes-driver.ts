import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm } from "node:fs/promises";
import { isIP } from "node:net";
import { dirname } from "node:path";
import type { Readable } from "node:stream";
import * as k8s from "@kubernetes/client-node";
import { digest, errorMessage, LobuError, type Logger, parseGatewayAddress } from "@lobu/core";
import { bestEffort, settled } from "@lobu/core/best-effort";
import type {
  DriverProbe,
  EgressBinder,
  ExecCommand,
  ExecResult,
  ExitInfo,
  SandboxDriver,
  SandboxInstance,
  SandboxSpec,
  SandboxUsage,
  WorkspaceSync,
} from "./driver.ts";
import { workerEnv } from "./env.ts";
import { podExec } from "./kubernetes-exec.ts";
import { launcherFrom, type WorkerLaunchConfig, type WorkerLauncher } from "./launcher.ts";
import { OutputCapture } from "./output.ts";
import { awaitRemoteWorker } from "./remote-worker.ts";
import { guardedStart } from "./starts.ts";
import { WorkerEndpoint } from "./worker-endpoint.ts";

const WORKSPACE = "/workspace";
const SKILLS = "/skills";
const CONTAINER = "worker";
/**
 * The worker starts once this file exists: the gateway first copies the host
 * folder (and the skills) into the pod, so the worker never sees a workspace
 * older than the gateway's copy.
 */
const SEEDED = "/tmp/.lobu-seeded";
/** Uid and gid of the worker in every pod (the image needs no user entry for it). */
const SANDBOX_UID = 10_001;

export interface KubernetesDriverOptions {
  namespace: string;
  image: string;
  /** Command that starts the worker in the image. */
  command: string[];
  /** RuntimeClass (`gvisor`, `kata`...); empty: the cluster's default runtime. */
  runtimeClass: string;
  /** StorageClass of the PVCs; empty: the cluster's default. */
  storageClass: string;
  /** `tcp://host:port` pods dial for the gateway's worker endpoint. */
  gatewayAddress: string;
  /** Where that endpoint listens here. */
  workerListen: { host: string; port: number };
  /** Labels and namespace of the gateway's pods (the NetworkPolicy's only egress). */
  gatewayLabels: Record<string, string>;
  gatewayNamespace: string;
  /** A loaded kubeconfig; default: kubeconfig file, else in-cluster, else ~/.kube/config. */
  kubeConfig?: k8s.KubeConfig;
  kubeconfigPath?: string;
  /** Host path of the CA bundle workers trust (system CAs + the installation CA of the proxy's TLS interception). */
  caBundle?: string;
  launcher?: WorkerLauncher | WorkerLaunchConfig;
  logger?: Logger;
  stopGraceMs?: number;
}

interface Running {
  spec: SandboxSpec;
  pod: string;
  instance: SandboxInstance;
  stopReason?: string;
  /** Ends the pod watch. */
  unwatch: () => void;
}

/**
 * The `kubernetes` driver: a pod per sandbox, made with the official client.
 * Each sandbox has a PVC (its workspace, kept while it sleeps), a
 * NetworkPolicy (no ingress; egress only to the gateway's pods on the worker
 * port, and to cluster DNS only when the gateway address is a name) and a Secret holding the token its worker opens its connections
 * with. Stop deletes the pod (scale to zero); the next message creates it again
 * on the same PVC. Pods cannot see the gateway's Unix sockets, so the worker
 * dials the gateway's worker endpoint over TCP (core's protocol/transport.ts)
 * for its control channel and its egress.
 */
export class KubernetesDriver implements SandboxDriver {
  readonly name = "kubernetes" as const;
  readonly launcher: WorkerLauncher;
  readonly #opts: KubernetesDriverOptions;
  readonly #logger: Logger;
  readonly #kc: k8s.KubeConfig;
  readonly #core: k8s.CoreV1Api;
  readonly #net: k8s.NetworkingV1Api;
  readonly #running = new Map<string, Running>();
  readonly #starting = new Map<string, Promise<unknown>>();
  #endpoint?: Promise<WorkerEndpoint>;
  #closed = false;
  /** The host folder and the pod's workspace kept in step (driver.ts WorkspaceSync). */
  readonly workspace: WorkspaceSync = {
    push: (id, paths) => this.#push(this.#rec(id), paths),
    pull: (id) => this.#pull(this.#rec(id)),
    pushSkills: (id) => this.#pushSkills(this.#rec(id)),
  };

  constructor(opts: KubernetesDriverOptions) {
    this.#opts = opts;
    this.launcher = launcherFrom(opts.launcher, opts.logger);
    this.#logger = opts.logger ?? this.launcher.logger;
    this.#kc = opts.kubeConfig ?? loadKubeConfig(opts.kubeconfigPath);
    this.#core = this.#kc.makeApiClient(k8s.CoreV1Api);
    this.#net = this.#kc.makeApiClient(k8s.NetworkingV1Api);
  }

  /** Object names: `lobu-<sandbox id, made a DNS label>-<hash>` (ids may hold `_` and `.`). */
  objectName(id: string): string {
    const label = id
      .toLowerCase()
      .replace(/[^a-z0-9-]/g, "-")
      .slice(0, 40)
      .replace(/-+$/, "");
    return `lobu-${label}-${digest(id, 8).toLowerCase()}`;
  }

  #workerEndpoint(): Promise<WorkerEndpoint> {
    this.#endpoint ??= WorkerEndpoint.listen(this.#opts.workerListen, this.#logger);
    return this.#endpoint;
  }

  /** The worker endpoint's TCP port (after the first start). */
  async endpointPort(): Promise<number> {
    return (await this.#workerEndpoint()).port;
  }

  running(): string[] {
    return [...this.#running.keys()];
  }

  async probe(): Promise<DriverProbe> {
    const ns = this.#opts.namespace;
    try {
      await this.#core.listNamespacedPod({ namespace: ns, limit: 1 });
      return {
        driver: "kubernetes",
        isolated: true,
        ok: true,
        details: [
          `Kubernetes API at ${this.#kc.getCurrentCluster()?.server ?? "?"} answers; pods go to namespace ${ns}`,
          this.#opts.runtimeClass
            ? `RuntimeClass ${this.#opts.runtimeClass}`
            : "the cluster's default runtime (no RuntimeClass: containers share the node's kernel)",
        ],
      };
    } catch (err) {
      return {
        driver: "kubernetes",
        isolated: true,
        ok: false,
        details: [
          `cannot list pods in namespace ${ns}: ${errorMessage(err)} (check the kubeconfig and the gateway's RBAC: pods, secrets, persistentvolumeclaims, networkpolicies)`,
        ],
      };
    }
  }

  async start(spec: SandboxSpec, egress: EgressBinder): Promise<SandboxInstance> {
    return guardedStart(
      spec.id,
      { closed: this.#closed, running: this.#running.has(spec.id), starting: this.#starting },
      () => this.#start(spec, egress),
    );
  }

  async #start(spec: SandboxSpec, egress: EgressBinder): Promise<SandboxInstance> {
    const log = this.#logger.child({ sandboxId: spec.id });
    const namespace = this.#opts.namespace;
    const name = this.objectName(spec.id);
    const endpoint = await this.#workerEndpoint();
    const binding = await egress.bind({ kind: "sandbox", sandboxId: spec.id });
    const output = new OutputCapture({ logger: this.#logger, bindings: { sandboxId: spec.id } });
    // The pod trusts what the worker's forwarder meets: the proxy's interception CA among the system's.
    const ca = this.#opts.caBundle ? await readFile(this.#opts.caBundle, "utf8") : undefined;
    await this.#ensure(() =>
      this.#core.createNamespacedPersistentVolumeClaim({
        namespace,
        body: this.#claim(spec, name),
      }),
    );
    await this.#ensure(() =>
      this.#net.createNamespacedNetworkPolicy({ namespace, body: this.#policy(spec, name) }),
    );
    // A pod left by a gateway that died is this sandbox's past.
    await this.#deletePod(name, 0);
    let unwatch = () => {};
    let podEnded: Promise<{ code: number | null; reason: string }> | undefined;
    try {
      const { connection, revoke } = await awaitRemoteWorker({
        sandboxId: spec.id,
        endpoint,
        egressSocketPath: binding.socketPath,
        logger: log,
        readyTimeoutMs: this.launcher.readyTimeoutMs,
        output,
        run: async (token) => {
          await this.#deleteSecret(name);
          await this.#core.createNamespacedSecret({
            namespace,
            body: {
              apiVersion: "v1",
              kind: "Secret",
              metadata: { name, labels: this.#labels(spec) },
              type: "Opaque",
              stringData: { token, ...(ca !== undefined ? { "ca.pem": ca } : {}) },
            },
          });
          const watched = await this.#watchPod(name);
          unwatch = watched.stop;
          podEnded = watched.ended;
          await this.#core.createNamespacedPod({
            namespace,
            body: this.#pod(spec, name, ca !== undefined),
          });
          const ended = watched.ended.then((e) => `${e.reason}, exit code ${e.code}`);
          // The container runs (the worker waits for SEEDED): copy the host folder and skills in.
          const up = await Promise.race([
            watched.running.then(() => true),
            ended.then(() => false),
          ]);
          if (up) await this.#seed({ spec, pod: name });
          return { ended };
        },
      });
      const rec: Running = {
        spec,
        pod: name,
        unwatch,
        instance: undefined as unknown as SandboxInstance,
      };
      const ended = podEnded as unknown as Promise<{ code: number | null; reason: string }>;
      const exited = ended.then(async ({ code, reason }): Promise<ExitInfo> => {
        unwatch();
        connection.close();
        revoke();
        await binding.close().catch(bestEffort(log, "egress socket of an ended pod not closed"));
        await this.#deletePod(name, 0).catch(
          bestEffort(log, "ended sandbox pod not deleted", { pod: name }),
        );
        await this.#deleteSecret(name).catch(
          bestEffort(log, "ended sandbox pod's secret not deleted", { secret: name }),
        );
        this.#running.delete(spec.id);
        const info: ExitInfo = {
          code,
          signal: null,
          reason:
            rec.stopReason ?? (reason === "OOMKilled" ? "oom" : code === 0 ? "stopped" : "crashed"),
        };
        log.info(info, "sandbox pod ended");
        return info;
      });
      rec.instance = {
        id: spec.id,
        driver: "kubernetes",
        startedAt: Date.now(),
        connection,
        exited,
        usage: () => this.#usage(rec),
      };
      this.#running.set(spec.id, rec);
      log.info({ pod: name, namespace, runtimeClass: this.#opts.runtimeClass }, "sandbox started");
      return rec.instance;
    } catch (err) {
      unwatch();
      // Cleanup after a failed start: the start's own error is what the caller gets.
      await this.#deletePod(name, 0).catch(
        bestEffort(log, "pod of a failed sandbox start not deleted", { pod: name }),
      );
      await this.#deleteSecret(name).catch(
        bestEffort(log, "secret of a failed sandbox start not deleted", { secret: name }),
      );
      await binding.close().catch(bestEffort(log, "egress socket of a failed start not closed"));
      throw err;
    }
  }

  #labels(spec: SandboxSpec): Record<string, string> {
    return {
      "app.kubernetes.io/name": "lobu-sandbox",
      "app.kubernetes.io/managed-by": "lobu",
      "lobu.dev/sandbox": this.objectName(spec.id),
    };
  }

  #claim(spec: SandboxSpec, name: string): k8s.V1PersistentVolumeClaim {
    return {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name, labels: this.#labels(spec) },
      spec: {
        accessModes: ["ReadWriteOnce"],
        resources: { requests: { storage: `${spec.limits.diskMb}Mi` } },
        ...(this.#opts.storageClass ? { storageClassName: this.#opts.storageClass } : {}),
      },
    };
  }

  /** No ingress at all; egress only to the gateway's pods on the worker endpoint's port. */
  #policy(spec: SandboxSpec, name: string): k8s.V1NetworkPolicy {
    const address = parseGatewayAddress(this.#opts.gatewayAddress);
    const { host, port } = "host" in address ? address : { host: "", port: 0 };
    return {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name, labels: this.#labels(spec) },
      spec: {
        podSelector: { matchLabels: { "lobu.dev/sandbox": name } },
        policyTypes: ["Ingress", "Egress"],
        ingress: [],
        egress: [
          {
            to: [
              {
                namespaceSelector: {
                  matchLabels: { "kubernetes.io/metadata.name": this.#opts.gatewayNamespace },
                },
                podSelector: { matchLabels: this.#opts.gatewayLabels },
              },
            ],
            ports: [{ protocol: "TCP", port }],
          },
          // A gateway address by name needs DNS (and DNS can carry data out): prefer an IP.
          ...(isIP(host) === 0
            ? [
                {
                  to: [
                    {
                      namespaceSelector: {
                        matchLabels: { "kubernetes.io/metadata.name": "kube-system" },
                      },
                      podSelector: { matchLabels: { "k8s-app": "kube-dns" } },
                    },
                  ],
                  ports: [
                    { protocol: "UDP", port: 53 },
                    { protocol: "TCP", port: 53 },
                  ],
                },
              ]
            : []),
        ],
      },
    };
  }

  #pod(spec: SandboxSpec, name: string, withCa: boolean): k8s.V1Pod {
    const env = workerEnv(
      spec,
      { HOME: WORKSPACE },
      {
        LOBU_CONTROL: this.#opts.gatewayAddress,
        LOBU_EGRESS_SOCKET: this.#opts.gatewayAddress,
        LOBU_VOLUME: WORKSPACE,
        ...(withCa ? { LOBU_CA_BUNDLE: "/etc/lobu/ca.pem" } : {}),
        ...(spec.skillsDir ? { LOBU_SKILLS_DIR: SKILLS } : {}),
      },
    );
    const memory = `${spec.limits.memoryMb}Mi`;
    return {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, labels: this.#labels(spec) },
      spec: {
        ...(this.#opts.runtimeClass ? { runtimeClassName: this.#opts.runtimeClass } : {}),
        restartPolicy: "Never",
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        hostNetwork: false,
        hostPID: false,
        hostIPC: false,
        terminationGracePeriodSeconds: 5,
        securityContext: {
          runAsNonRoot: true,
          runAsUser: SANDBOX_UID,
          runAsGroup: SANDBOX_UID,
          fsGroup: SANDBOX_UID,
          seccompProfile: { type: "RuntimeDefault" },
        },
        containers: [
          {
            name: CONTAINER,
            image: this.#opts.image,
            imagePullPolicy: "IfNotPresent",
            command: [
              "/bin/sh",
              "-c",
              `until [ -e ${SEEDED} ]; do sleep 0.1; done; exec "$@"`,
              "sh",
              ...this.#opts.command,
            ],
            workingDir: WORKSPACE,
            env: [
              ...Object.entries(env).map(([k, v]) => ({ name: k, value: v })),
              {
                name: "LOBU_WORKER_TOKEN",
                valueFrom: { secretKeyRef: { name, key: "token" } },
              },
            ],
            resources: {
              limits: { memory, cpu: String(spec.limits.cpus) },
              requests: { memory, cpu: String(spec.limits.cpus) },
            },
            securityContext: {
              allowPrivilegeEscalation: false,
              readOnlyRootFilesystem: true,
              privileged: false,
              capabilities: { drop: ["ALL"] },
            },
            volumeMounts: [
              { name: "workspace", mountPath: WORKSPACE },
              { name: "tmp", mountPath: "/tmp" },
              ...(spec.skillsDir ? [{ name: "skills", mountPath: SKILLS }] : []),
              ...(withCa ? [{ name: "ca", mountPath: "/etc/lobu", readOnly: true }] : []),
            ],
          },
        ],
        volumes: [
          { name: "workspace", persistentVolumeClaim: { claimName: name } },
          { name: "tmp", emptyDir: { medium: "Memory", sizeLimit: "64Mi" } },
          ...(spec.skillsDir ? [{ name: "skills", emptyDir: { sizeLimit: "256Mi" } }] : []),
          ...(withCa
            ? [
                {
                  name: "ca",
                  secret: { secretName: name, items: [{ key: "ca.pem", path: "ca.pem" }] },
                },
              ]
            : []),
        ],
      },
    };
  }

  /** Watch pod `name` until it ends (Succeeded, Failed or deleted). */
  async #watchPod(name: string): Promise<{
    ended: Promise<{ code: number | null; reason: string }>;
    running: Promise<void>;
    stop: () => void;
  }> {
    let finish!: (e: { code: number | null; reason: string }) => void;
    const ended = new Promise<{ code: number | null; reason: string }>((r) => {
      finish = r;
    });
    let up!: () => void;
    const running = new Promise<void>((r) => {
      up = r;
    });
    const watch = new k8s.Watch(this.#kc);
    const req = await watch.watch(
      `/api/v1/namespaces/${this.#opts.namespace}/pods`,
      { fieldSelector: `metadata.name=${name}` },
      (type, pod: k8s.V1Pod) => {
        const terminated = pod.status?.containerStatuses?.[0]?.state?.terminated;
        if (type === "DELETED")
          finish({ code: terminated?.exitCode ?? null, reason: terminated?.reason ?? "Deleted" });
        else if (pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed")
          finish({ code: terminated?.exitCode ?? null, reason: terminated?.reason ?? "Ended" });
        else if (pod.status?.containerStatuses?.[0]?.state?.running) up();
      },
      (err) => {
        // A watch that breaks does not end the pod; the stop path deletes it anyway.
        if (err) this.#logger.debug({ pod: name, err: errorMessage(err) }, "pod watch ended");
      },
    );
    return { ended, running, stop: () => req.abort() };
  }

  /** Create unless it exists (409): PVCs and policies outlive their pods. */
  async #ensure(create: () => Promise<unknown>): Promise<void> {
    try {
      await create();
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
    }
  }

  async #deletePod(name: string, grace: number): Promise<void> {
    try {
      await this.#core.deleteNamespacedPod({
        name,
        namespace: this.#opts.namespace,
        gracePeriodSeconds: grace,
      });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
    }
  }

  async #deleteSecret(name: string): Promise<void> {
    try {
      await this.#core.deleteNamespacedSecret({ name, namespace: this.#opts.namespace });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
    }
  }

  /** Stop: ask the worker, then delete the pod (scale to zero); the PVC and policy stay. */
  async stop(id: string, opts: { graceMs?: number; reason?: string } = {}): Promise<void> {
    await settled(this.#starting.get(id));
    const rec = this.#running.get(id);
    if (!rec) return;
    rec.stopReason ??= opts.reason ?? "stopped";
    const graceMs = opts.graceMs ?? this.#opts.stopGraceMs ?? 5000;
    // The host copy is what a snapshot, another gateway or the next start sees.
    if (rec.stopReason !== "erased")
      await this.#pull(rec).catch((err) =>
        this.#logger.warn(
          { sandboxId: id, err: errorMessage(err) },
          "workspace not copied back from the pod before it stopped",
        ),
      );
    rec.instance.connection.send({ t: "shutdown" });
    const gone = await Promise.race([
      rec.instance.exited.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), graceMs)),
    ]);
    if (!gone) await this.#deletePod(rec.pod, 2);
    await rec.instance.exited;
  }

  /** Delete a sandbox's objects for good, its PVC too (erasure, reset with wipe). */
  async erase(id: string): Promise<void> {
    await this.stop(id, { reason: "erased" });
    const name = this.objectName(id);
    const namespace = this.#opts.namespace;
    for (const del of [
      () => this.#core.deleteNamespacedPersistentVolumeClaim({ name, namespace }),
      () => this.#net.deleteNamespacedNetworkPolicy({ name, namespace }),
    ])
      await del().catch((err) => {
        if ((err as { code?: number }).code !== 404) throw err;
      });
  }

  #rec(id: string): Running {
    const rec = this.#running.get(id);
    if (!rec)
      throw new LobuError("sandbox_not_running", `sandbox ${id} is not running`, {
        status: 404,
        hint: "Start it (send it a message) and try again.",
      });
    return rec;
  }

  /** Run `command` in the pod; fails unless it exits 0. */
  async #run(
    pod: string,
    command: string[],
    what: string,
    io: { stdin?: Readable; onStdout?: (c: Buffer) => void } = {},
  ): Promise<void> {
    let err = "";
    const res = await podExec(this.#kc, {
      namespace: this.#opts.namespace,
      pod,
      container: CONTAINER,
      command,
      ...(io.stdin ? { stdin: io.stdin as Readable } : {}),
      ...(io.onStdout ? { onStdout: io.onStdout } : {}),
      onStderr: (c) => {
        err = (err + c.toString()).slice(-2000);
      },
      timeoutMs: SYNC_TIMEOUT_MS,
    });
    if (res.exitCode !== 0)
      throw new Error(
        `${what} failed in pod ${pod}: ${res.timedOut ? "timed out" : `exit ${res.exitCode}`} ${res.message ?? err}`.trim(),
      );
  }

  /** Copy `dir`'s entries `paths` (all: ".") into `target` in the pod, replacing it first when `replace`. */
  async #copyIn(pod: string, dir: string, paths: string[], target: string, replace: boolean) {
    const tar = spawn("tar", ["-c", "-C", dir, "--", ...paths], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const tarDone = exitOf(tar);
    const extract = `tar -x --no-same-owner -m -C ${target} -f -`;
    const script = replace ? `find ${target} -mindepth 1 -delete && ${extract}` : extract;
    await this.#run(pod, ["/bin/sh", "-c", script], `copying into ${target}`, {
      stdin: tar.stdout,
    });
    const code = await tarDone;
    if (code !== 0) throw new Error(`tar of ${dir} exited ${code}`);
  }

  /** Start of a pod: the host folder (all of it) and the skills, then let the worker start. */
  async #seed(rec: Pick<Running, "spec" | "pod">): Promise<void> {
    await this.#copyIn(rec.pod, rec.spec.volumeDir, ["."], WORKSPACE, true);
    await this.#pushSkills(rec);
    await this.#run(rec.pod, ["/bin/sh", "-c", `: > ${SEEDED}`], "starting the worker");
  }

  async #push(rec: Running, paths: string[]): Promise<void> {
    const safe = paths.filter((p) => p && !p.startsWith("/") && !p.split("/").includes(".."));
    if (safe.length > 0) await this.#copyIn(rec.pod, rec.spec.volumeDir, safe, WORKSPACE, false);
  }

  async #pushSkills(rec: Pick<Running, "spec" | "pod">): Promise<void> {
    if (rec.spec.skillsDir) await this.#copyIn(rec.pod, rec.spec.skillsDir, ["."], SKILLS, true);
  }

  /**
   * The pod's workspace replaces the host folder: unpacked beside it, then
   * swapped in by renames, so a reader never sees half of it.
   */
  async #pull(rec: Running): Promise<void> {
    const host = rec.spec.volumeDir;
    const tag = randomBytes(4).toString("hex");
    const fresh = `${host}.pull-${tag}`;
    const old = `${host}.old-${tag}`;
    await mkdir(fresh, { recursive: true });
    try {
      const tar = spawn("tar", ["-x", "-m", "-C", fresh, "-f", "-"], {
        stdio: ["pipe", "ignore", "pipe"],
      });
      const tarDone = exitOf(tar);
      // GNU tar exits 1 when a file changed while it was read (the agent wrote meanwhile).
      await this.#run(
        rec.pod,
        ["/bin/sh", "-c", `tar -c -C ${WORKSPACE} . ; s=$?; [ $s -le 1 ]`],
        "copying the workspace out",
        { onStdout: (c) => tar.stdin.write(c) },
      );
      tar.stdin.end();
      const code = await tarDone;
      if (code !== 0) throw new Error(`unpacking the workspace exited ${code}`);
      await mkdir(dirname(host), { recursive: true });
      await rename(host, old).catch((err) => {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      });
      await rename(fresh, host);
    } finally {
      await rm(fresh, { recursive: true, force: true });
      await rm(old, { recursive: true, force: true });
    }
  }

  /** Memory from the metrics API (metrics-server), disk as `du` in the pod measures the workspace. */
  async #usage(rec: Running): Promise<SandboxUsage> {
    const out: SandboxUsage = {};
    try {
      const list = await new k8s.Metrics(this.#kc).getPodMetrics(this.#opts.namespace);
      const pod = list.items.find((i) => i.metadata.name === rec.pod);
      const memory = pod?.containers.find((c) => c.name === CONTAINER)?.usage.memory;
      if (memory !== undefined) out.memoryBytes = quantityBytes(memory);
    } catch (err) {
      this.#logger.debug({ pod: rec.pod, err: errorMessage(err) }, "no pod metrics");
    }
    try {
      let du = "";
      await this.#run(rec.pod, ["du", "-sk", WORKSPACE], "measuring the workspace", {
        onStdout: (c) => {
          du += c.toString();
        },
      });
      const kib = Number(/^(\d+)/.exec(du)?.[1]);
      if (Number.isFinite(kib)) out.diskBytes = kib * 1024;
    } catch (err) {
      this.#logger.debug({ pod: rec.pod, err: errorMessage(err) }, "workspace not measured");
    }
    return out;
  }

  /** An operator's command in the pod (`lobu sandboxes exec`), through `pods/exec`. */
  async exec(
    id: string,
    command: ExecCommand,
    opts: { timeoutMs?: number; onData?: (chunk: string) => void } = {},
  ): Promise<ExecResult> {
    const rec = this.#rec(id);
    let output = "";
    const on = (c: Buffer) => {
      const text = c.toString("utf8");
      output += text;
      opts.onData?.(text);
    };
    const res = await podExec(this.#kc, {
      namespace: this.#opts.namespace,
      pod: rec.pod,
      container: CONTAINER,
      command: typeof command === "string" ? ["/bin/sh", "-c", command] : [...command],
      onStdout: on,
      onStderr: on,
      timeoutMs: opts.timeoutMs ?? 60_000,
    });
    if (res.message) output += `${output && !output.endsWith("\n") ? "\n" : ""}${res.message}\n`;
    return { exitCode: res.exitCode, output, ...(res.timedOut ? { timedOut: true } : {}) };
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#starting.values()].map(settled));
    await Promise.all(
      this.running().map((id) => this.stop(id, { graceMs: 2000, reason: "stopped" })),
    );
    const endpoint = await this.#endpoint?.catch(() => undefined);
    await endpoint?.close();
  }
}

/** A copy in or out of a pod gives up after this long. */
const SYNC_TIMEOUT_MS = 120_000;

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    child.on("error", () => resolve(null));
    child.on("close", (code) => resolve(code));
  });
}

/** Bytes of a Kubernetes memory quantity (`123456Ki`, `12Mi`, `1G`, plain bytes). */
export function quantityBytes(q: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMGTPE]i?|k|m)?$/.exec(q.trim());
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  const unit = m[2] ?? "";
  const bin: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };
  const dec: Record<string, number> = { k: 1, K: 1, M: 2, G: 3, T: 4, P: 5, E: 6 };
  if (unit === "m") return n / 1000;
  if (unit in bin) return n * 1024 ** (bin[unit] as number);
  if (unit in dec) return n * 1000 ** (dec[unit] as number);
  return n;
}

function loadKubeConfig(path: string | undefined): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return kc;
}

export function createKubernetesDriver(opts: KubernetesDriverOptions): KubernetesDriver {
  return new KubernetesDriver(opts);
}
