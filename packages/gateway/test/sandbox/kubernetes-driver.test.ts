import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { FakeKubernetes } from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxInstance } from "../../src/sandbox/driver.ts";
import {
  createKubernetesDriver,
  type KubernetesDriver,
} from "../../src/sandbox/kubernetes-driver.ts";
import { FIXTURE, makeSpec, probe, scratch, TestEgress, testLogger } from "./helpers.ts";

/**
 * The `kubernetes` driver through the official client against testkit's fake
 * API server, which validates every object against the Kubernetes schemas and
 * runs each pod's command as a host process (its "kubelet"). The worker is the
 * attacker fixture, dialing the gateway's worker endpoint over TCP with the
 * token from its Secret. What a real cluster adds (RuntimeClass, enforced
 * NetworkPolicy, security contexts) is not exercised here: docs/sandboxing.md.
 */

async function freePort(): Promise<number> {
  const s = createServer().listen(0, "127.0.0.1");
  await new Promise((r) => s.once("listening", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** What the endpoint answers a raw connection that says `first` and ends (empty: it was closed). */
function rawExchange(port: number, first: string): Promise<string> {
  return new Promise((resolve) => {
    let got = "";
    const s = connect({ host: "127.0.0.1", port }, () => s.end(first));
    s.on("data", (d) => {
      got += d.toString();
    });
    s.on("close", () => resolve(got));
    s.on("error", () => {});
  });
}

describe("kubernetes driver (fake API server)", () => {
  const { dir, cleanup } = scratch();
  const egress = new TestEgress(dir);
  const api = new FakeKubernetes();
  let driver: KubernetesDriver;
  let port = 0;
  let a: SandboxInstance;
  const caFile = join(dir, "ca.pem");

  beforeAll(async () => {
    await api.start();
    port = await freePort();
    writeFileSync(caFile, "-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n");
    const kc = new k8s.KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "fake", server: api.url, skipTLSVerify: true }],
      users: [{ name: "gateway", token: "fake-token" }],
      contexts: [{ name: "fake", cluster: "fake", user: "gateway" }],
      currentContext: "fake",
    });
    driver = createKubernetesDriver({
      namespace: "lobu-sandboxes",
      image: "registry.example/lobu-sandbox:1",
      command: [process.execPath, FIXTURE],
      runtimeClass: "gvisor",
      storageClass: "",
      gatewayAddress: `tcp://127.0.0.1:${port}`,
      workerListen: { host: "127.0.0.1", port },
      gatewayLabels: { "app.kubernetes.io/name": "lobu-gateway" },
      gatewayNamespace: "lobu",
      kubeConfig: kc,
      caBundle: caFile,
      logger: testLogger(),
    });
    expect((await driver.probe()).ok).toBe(true);
    a = await driver.start(makeSpec(dir, "k8s-a", {}, { GREETING: "hi" }), egress);
  }, 60_000);

  afterAll(async () => {
    await driver?.close();
    await egress.close();
    await api.close();
    cleanup();
  });

  it("creates a valid PVC, NetworkPolicy, Secret and Pod with the RuntimeClass and confinement", () => {
    expect(api.refused).toEqual([]);
    const name = driver.objectName("k8s-a");
    const pod = api.get("pods", "lobu-sandboxes", name)!;
    expect(pod.spec.runtimeClassName).toBe("gvisor");
    expect(pod.spec.automountServiceAccountToken).toBe(false);
    expect(pod.spec.securityContext).toMatchObject({ runAsNonRoot: true });
    expect(pod.spec.containers[0].securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    expect(pod.spec.volumes[0]).toEqual({
      name: "workspace",
      persistentVolumeClaim: { claimName: name },
    });
    // The token is in a Secret, never in the pod spec.
    expect(JSON.stringify(pod)).not.toMatch(/lobu-worker|"LOBU_WORKER_TOKEN","value"/);
    const policy = api.get("networkpolicies", "lobu-sandboxes", name)!;
    expect(policy.spec.policyTypes).toEqual(["Ingress", "Egress"]);
    expect(policy.spec.ingress).toEqual([]);
    expect(policy.spec.egress).toEqual([
      {
        to: [
          {
            namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "lobu" } },
            podSelector: { matchLabels: { "app.kubernetes.io/name": "lobu-gateway" } },
          },
        ],
        ports: [{ protocol: "TCP", port }],
      },
    ]);
    // The proxy's CA reaches the pod through the Secret, mounted read-only.
    expect(pod.spec.containers[0].env).toContainEqual({
      name: "LOBU_CA_BUNDLE",
      value: "/etc/lobu/ca.pem",
    });
    expect(pod.spec.containers[0].volumeMounts).toContainEqual({
      name: "ca",
      mountPath: "/etc/lobu",
      readOnly: true,
    });
    const secret = api.get("secrets", "lobu-sandboxes", name)!;
    expect(secret.stringData["ca.pem"]).toMatch(/BEGIN CERTIFICATE/);
    const pvc = api.get("persistentvolumeclaims", "lobu-sandboxes", name)!;
    expect(pvc.spec.resources.requests.storage).toBe("64Mi");
  });

  it("the fake refuses what a real API server refuses (schema validation)", async () => {
    const kc = new k8s.KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "fake", server: api.url, skipTLSVerify: true }],
      users: [{ name: "u" }],
      contexts: [{ name: "fake", cluster: "fake", user: "u" }],
      currentContext: "fake",
    });
    const core = kc.makeApiClient(k8s.CoreV1Api);
    await expect(
      core.createNamespacedPod({
        namespace: "lobu-sandboxes",
        body: { metadata: { name: "bad" }, spec: { containers: [{ image: "x" }] } } as never,
      }),
    ).rejects.toMatchObject({ code: 422 });
    expect(api.refused.at(-1)).toMatch(/pods bad:.*name/);
    api.refused.length = 0;
  });

  it("runs the worker, which talks over TCP with its token and reaches only its egress", async () => {
    const who = await probe<{ env: Record<string, string>; cwd: string }>(a, { op: "whoami" });
    expect(who.env).toMatchObject({
      GREETING: "hi",
      LOBU_SANDBOX_ID: "k8s-a",
      LOBU_CONTROL: `tcp://127.0.0.1:${port}`,
    });
    // Egress over TCP with the token lands on this sandbox's own egress socket.
    const token = who.env.LOBU_WORKER_TOKEN!;
    expect(await rawExchange(port, `lobu-worker egress ${token}\nGET /`)).toBe(
      "egress:k8s-a:GET /",
    );
  });

  it("refuses connections without a valid token, and a second control channel", async () => {
    const before = api.refused.length;
    expect(await rawExchange(port, "hello\n")).toBe("");
    expect(await rawExchange(port, `lobu-worker egress ${"x".repeat(43)}\nGET /`)).toBe("");
    expect(await rawExchange(port, `lobu-worker control ${"y".repeat(200)}\n`)).toBe("");
    const who = await probe<{ env: Record<string, string> }>(a, { op: "whoami" });
    const token = who.env.LOBU_WORKER_TOKEN!;
    // The worker holds the control channel: the same token opens no second one.
    expect(await rawExchange(port, `lobu-worker control ${token}\n{"t":"ready"}\n`)).toBe("");
    expect(api.refused.length).toBe(before);
    // The sandbox still works.
    expect(await probe(a, { op: "whoami" })).toMatchObject({ uid: process.getuid?.() });
  });

  it("scales to zero: stop deletes the pod and keeps the PVC; start wakes it on the same volume", async () => {
    const name = driver.objectName("k8s-a");
    const volume = api.volumeDir("lobu-sandboxes", name);
    writeFileSync(join(volume, "kept.txt"), "still here");
    await driver.stop("k8s-a");
    expect(await a.exited).toMatchObject({ reason: "stopped" });
    expect(api.get("pods", "lobu-sandboxes", name)).toBeUndefined();
    expect(api.get("secrets", "lobu-sandboxes", name)).toBeUndefined();
    expect(api.get("persistentvolumeclaims", "lobu-sandboxes", name)).toBeDefined();
    a = await driver.start(makeSpec(dir, "k8s-a"), egress);
    const back = await probe<{ ok: boolean; data: string }>(a, {
      op: "read",
      path: join(volume, "kept.txt"),
    });
    expect(back).toMatchObject({ ok: true, data: "still here" });
    expect(readFileSync(join(volume, "kept.txt"), "utf8")).toBe("still here");
  });

  it("erase deletes the pod, the PVC and the NetworkPolicy", async () => {
    const e = await driver.start(makeSpec(dir, "k8s-e"), egress);
    const name = driver.objectName("k8s-e");
    expect(api.get("persistentvolumeclaims", "lobu-sandboxes", name)).toBeDefined();
    await driver.erase("k8s-e");
    expect(await e.exited).toMatchObject({ reason: "erased" });
    for (const kind of ["pods", "secrets", "persistentvolumeclaims", "networkpolicies"] as const)
      expect(api.get(kind, "lobu-sandboxes", name), kind).toBeUndefined();
    // Erasing what is already gone is not an error.
    await driver.erase("k8s-e");
  });

  it("copies the host folder into the PVC before the worker starts, and skills to /skills", async () => {
    const spec = makeSpec(dir, "k8s-s");
    writeFileSync(join(spec.volumeDir, "restored.txt"), "from a snapshot");
    const skills = join(dir, "skills-s");
    mkdirSync(join(skills, "pdf"), { recursive: true });
    writeFileSync(join(skills, "pdf", "SKILL.md"), "# pdf");
    const name = driver.objectName("k8s-s");
    // What the PVC held from an earlier life and the host copy no longer has is gone.
    writeFileSync(join(api.volumeDir("lobu-sandboxes", name), "stale.txt"), "old");
    const s = await driver.start({ ...spec, skillsDir: skills }, egress);
    const pod = api.get("pods", "lobu-sandboxes", name)!;
    expect(pod.spec.containers[0].env).toContainEqual({
      name: "LOBU_SKILLS_DIR",
      value: "/skills",
    });
    const pvc = api.volumeDir("lobu-sandboxes", name);
    const seen = await probe<{ ok: boolean; data: string }>(s, {
      op: "read",
      path: join(pvc, "restored.txt"),
    });
    expect(seen).toMatchObject({ ok: true, data: "from a snapshot" });
    expect(existsSync(join(pvc, "stale.txt"))).toBe(false);
    const who = await probe<{ env: Record<string, string> }>(s, { op: "whoami" });
    const skill = await probe<{ ok: boolean; data: string }>(s, {
      op: "read",
      path: join(who.env.LOBU_SKILLS_DIR!, "pdf", "SKILL.md"),
    });
    expect(skill).toMatchObject({ ok: true, data: "# pdf" });

    // An attachment written on the host mid-life is pushed in; a changed skill too.
    mkdirSync(join(spec.volumeDir, "inbox", "2026-12-06"), { recursive: true });
    writeFileSync(join(spec.volumeDir, "inbox", "2026-12-06", "a.txt"), "attached");
    await driver.workspace.push("k8s-s", ["inbox/2026-12-06/a.txt", "../escape"]);
    expect(readFileSync(join(pvc, "inbox", "2026-12-06", "a.txt"), "utf8")).toBe("attached");
    writeFileSync(join(skills, "pdf", "SKILL.md"), "# pdf v2");
    await driver.workspace.pushSkills("k8s-s");
    expect(readFileSync(join(who.env.LOBU_SKILLS_DIR!, "pdf", "SKILL.md"), "utf8")).toBe(
      "# pdf v2",
    );

    // What the agent writes reaches the host copy on a pull (snapshots, saves) and at stop.
    await probe(s, { op: "write", path: join(pvc, "made.txt"), bytes: 5 });
    await driver.workspace.pull("k8s-s");
    expect(readFileSync(join(spec.volumeDir, "made.txt")).length).toBe(5);
    expect(existsSync(join(spec.volumeDir, "restored.txt"))).toBe(true);
    await probe(s, { op: "write", path: join(pvc, "late.txt"), bytes: 7 });
    await driver.stop("k8s-s");
    expect(readFileSync(join(spec.volumeDir, "late.txt")).length).toBe(7);
  });

  it("runs an operator's command in the pod through pods/exec, with its exit code and output", async () => {
    const res = await driver.exec("k8s-a", "echo out; echo err >&2; exit 3");
    expect(res).toEqual({ exitCode: 3, output: expect.stringMatching(/out\n[\s\S]*err\n/) });
    const chunks: string[] = [];
    const ok = await driver.exec("k8s-a", ["echo", "a b"], { onData: (c) => chunks.push(c) });
    expect(ok).toEqual({ exitCode: 0, output: "a b\n" });
    expect(chunks.join("")).toBe("a b\n");
    const slow = await driver.exec("k8s-a", "sleep 5", { timeoutMs: 300 });
    expect(slow).toMatchObject({ exitCode: null, timedOut: true });
    const asked = api.execs.filter((e) => e.pod === driver.objectName("k8s-a"));
    expect(asked.map((e) => e.command)).toContainEqual([
      "/bin/sh",
      "-c",
      "echo out; echo err >&2; exit 3",
    ]);
    await expect(driver.exec("nope", "true")).rejects.toMatchObject({
      code: "sandbox_not_running",
    });
  });

  it("reports memory from the metrics API and the workspace's disk use", async () => {
    const name = driver.objectName("k8s-a");
    writeFileSync(join(api.volumeDir("lobu-sandboxes", name), "big.bin"), Buffer.alloc(300_000));
    const usage = await a.usage();
    expect(usage.memoryBytes).toBeGreaterThan(1024 * 1024);
    expect(usage.diskBytes).toBeGreaterThanOrEqual(300_000);
  });

  it("reports a crash when the pod's worker exits", async () => {
    const c = await driver.start(makeSpec(dir, "k8s-c"), egress);
    await probe(c, { op: "exit", code: 3 });
    expect(await c.exited).toMatchObject({ code: 3, reason: "crashed" });
    expect(driver.running()).not.toContain("k8s-c");
  });
});
