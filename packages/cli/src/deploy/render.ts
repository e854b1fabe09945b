import { LobuConfig, LobuError, parseConfig } from "@lobu/core";
import { parse as parseToml } from "smol-toml";

/**
 * Deployment manifests rendered from a `lobu.toml`: a Compose project
 * (gateway + Redis) and Kubernetes objects (gateway replicas, Redis, the
 * configuration, RBAC for the kubernetes sandbox driver). Pure functions:
 * `lobu deploy render` writes what they return, and the Helm chart's
 * templates are this output with values placeholders (helm.ts).
 */

/** Where the gateway's files are inside its image and its pod or container. */
export const PATHS = { config: "/etc/lobu/lobu.toml", data: "/data" } as const;
export const GATEWAY_PORT = 8080;
/** The non-root user the images run as (deploy/gateway.Dockerfile). */
export const GATEWAY_UID = 10001;

export interface RenderOptions {
  /** Compose: build the gateway image from this repository checkout (relative to the compose file). */
  buildContext?: string;
  /** The gateway image. */
  image: string;
  redisImage: string;
  /** Kubernetes: gateway replicas. */
  replicas: number;
  /** Kubernetes: the namespace everything goes in. */
  namespace: string;
  /** Kubernetes: size of Redis's volume. */
  redisStorage: string;
}

export const DEFAULTS: RenderOptions = {
  image: "lobu/gateway:0.1.0",
  redisImage: "redis:7.4-alpine",
  replicas: 2,
  namespace: "lobu",
  redisStorage: "8Gi",
};

/** The parts of lobu.toml a deployment depends on. */
export interface DeployConfig {
  /** The file's text, shipped as-is (ConfigMap / bind mount). */
  toml: string;
  config: LobuConfig;
  /** `[sandbox] driver` as written (docker and kubernetes included). */
  sandboxDriver: string;
}

/** Drivers of other runtimes, accepted here even where this schema does not list them yet. */
const CONTAINER_DRIVERS = new Set(["docker", "kubernetes"]);

/** Read and check lobu.toml for a deployment: Redis is the store (several gateways, one state). */
export function readDeployConfig(toml: string, file = "lobu.toml"): DeployConfig {
  const raw = parseToml(toml) as { sandbox?: { driver?: unknown } };
  const sandboxDriver = typeof raw.sandbox?.driver === "string" ? raw.sandbox.driver : "auto";
  let config: LobuConfig;
  if (CONTAINER_DRIVERS.has(sandboxDriver) && !LobuConfig.safeParse(raw).success) {
    // Checked with the driver line left out: the rest of the file must still be right.
    config = parseConfig(toml.replace(/^\s*driver\s*=\s*"(docker|kubernetes)"\s*$/m, ""), file);
  } else {
    config = parseConfig(toml, file);
  }
  if (config.store.driver !== "redis")
    throw new LobuError(
      "config_invalid",
      `${file}: [store] driver is "${config.store.driver}"; a deployment runs Redis and every gateway shares it`,
      {
        hint: 'Set [store] driver = "redis" (the rendered manifests set REDIS_URL to their Redis).',
      },
    );
  return { toml, config, sandboxDriver };
}

type Obj = Record<string, unknown>;

/** The environment every gateway container gets (secrets come from the environment, never the file). */
function gatewayEnv(redisUrl: string): Obj {
  return {
    LOBU_HOST: "0.0.0.0",
    LOBU_PORT: String(GATEWAY_PORT),
    LOBU_DATA_DIR: PATHS.data,
    REDIS_URL: redisUrl,
    LOBU_LOG_FORMAT: "json",
  };
}

const REDIS_ARGS = ["--appendonly", "yes", "--maxmemory-policy", "noeviction"];

/** A Compose project: `docker compose up -d` next to lobu.toml and .env. */
export function renderCompose(d: DeployConfig, o: RenderOptions): Obj {
  const gateway: Obj = {
    image: o.image,
    ...(o.buildContext
      ? { build: { context: o.buildContext, dockerfile: "deploy/gateway.Dockerfile" } }
      : {}),
    restart: "unless-stopped",
    depends_on: { redis: { condition: "service_healthy" } },
    // Provider keys, LOBU_MASTER_KEY, LOBU_ADMIN_TOKEN, platform tokens.
    env_file: [".env"],
    environment: gatewayEnv("redis://redis:6379"),
    // Where the host publishes it: LOBU_HOST_PORT in .env (e.g. "127.0.0.1:8080"
    // behind a proxy on the same host), else every address on 8080.
    ports: [`\${LOBU_HOST_PORT:-${GATEWAY_PORT}}:${GATEWAY_PORT}`],
    volumes: [`./lobu.toml:${PATHS.config}:ro`, `lobu-data:${PATHS.data}`],
    command: ["run", "--config", PATHS.config],
  };
  if (d.sandboxDriver === "docker") {
    // The docker driver starts sandbox containers on this host's engine.
    (gateway.volumes as string[]).push("/var/run/docker.sock:/var/run/docker.sock");
  } else if (d.sandboxDriver !== "virtual" && d.sandboxDriver !== "host") {
    // process (and auto): bubblewrap makes user, mount and pid namespaces inside the
    // container. Docker's seccomp profile refuses them, AppArmor's refuses the mounts
    // and the masked /proc paths refuse bwrap's /proc: without these `auto` picks
    // "virtual". No capability is added (the gateway's user 10001 could not use one).
    gateway.security_opt = [
      "seccomp=unconfined",
      "apparmor=unconfined",
      "systempaths=unconfined",
      "no-new-privileges:true",
    ];
  }
  return {
    name: "lobu",
    services: {
      redis: {
        image: o.redisImage,
        restart: "unless-stopped",
        command: ["redis-server", ...REDIS_ARGS],
        volumes: ["redis-data:/data"],
        healthcheck: {
          test: ["CMD", "redis-cli", "ping"],
          interval: "5s",
          timeout: "3s",
          retries: 10,
        },
      },
      gateway,
    },
    volumes: { "redis-data": {}, "lobu-data": {} },
  };
}

const LABELS = { "app.kubernetes.io/part-of": "lobu" };
function meta(name: string, o: RenderOptions, component: string): Obj {
  return {
    name,
    namespace: o.namespace,
    labels: { ...LABELS, "app.kubernetes.io/name": name, "app.kubernetes.io/component": component },
  };
}

/** The Secret the gateway reads its keys from (made by the operator, never rendered with values). */
export const SECRET_NAME = "lobu-secrets";

/** Kubernetes objects, in the order `kubectl apply -f` should create them. */
export function renderKubernetes(d: DeployConfig, o: RenderOptions): Obj[] {
  const selector = { "app.kubernetes.io/name": "lobu-gateway" };
  const redisSelector = { "app.kubernetes.io/name": "lobu-redis" };
  const secretEnv = (name: string, optional: boolean) => ({
    name,
    valueFrom: { secretKeyRef: { name: SECRET_NAME, key: name, optional } },
  });
  const env = [
    ...Object.entries(gatewayEnv(`redis://lobu-redis.${o.namespace}.svc:6379`)).map(
      ([name, value]) => ({ name, value }),
    ),
    { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
    { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
    secretEnv("LOBU_MASTER_KEY", false),
    secretEnv("LOBU_ADMIN_TOKEN", false),
  ];
  const probe = (path: string) => ({
    httpGet: { path, port: "http" },
    periodSeconds: 10,
    timeoutSeconds: 3,
  });
  return [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: o.namespace, labels: LABELS } },
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: meta("lobu-config", o, "config"),
      data: { "lobu.toml": d.toml },
    },
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: meta("lobu-gateway", o, "gateway"),
    },
    {
      // What the kubernetes sandbox driver does: a pod, a PVC, a Secret and a NetworkPolicy per sandbox.
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: meta("lobu-sandboxes", o, "gateway"),
      rules: [
        {
          apiGroups: [""],
          resources: ["pods", "persistentvolumeclaims"],
          verbs: ["get", "list", "watch", "create", "delete", "patch"],
        },
        { apiGroups: [""], resources: ["pods/log"], verbs: ["get"] },
        // Each sandbox's Secret (its worker token and the proxy CA): made and removed, never
        // read back, so the role cannot read other Secrets of the namespace.
        { apiGroups: [""], resources: ["secrets"], verbs: ["create", "delete"] },
        // Copying workspaces and skills in and out, and operators' `lobu sandboxes exec`
        // (a WebSocket: `get` on older API servers, `create` since Kubernetes 1.31).
        { apiGroups: [""], resources: ["pods/exec"], verbs: ["get", "create"] },
        // Memory of the sandboxes (metrics-server), for `lobu sandboxes`.
        { apiGroups: ["metrics.k8s.io"], resources: ["pods"], verbs: ["get", "list"] },
        {
          apiGroups: ["networking.k8s.io"],
          resources: ["networkpolicies"],
          verbs: ["get", "list", "watch", "create", "delete", "patch"],
        },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: meta("lobu-sandboxes", o, "gateway"),
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "lobu-sandboxes" },
      subjects: [{ kind: "ServiceAccount", name: "lobu-gateway", namespace: o.namespace }],
    },
    {
      // Only the gateways reach Redis (it holds every conversation and the encrypted secrets):
      // not sandbox pods, not anything else in the cluster.
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: meta("lobu-redis", o, "store"),
      spec: {
        podSelector: { matchLabels: redisSelector },
        policyTypes: ["Ingress"],
        ingress: [
          {
            from: [{ podSelector: { matchLabels: selector } }],
            ports: [{ protocol: "TCP", port: 6379 }],
          },
        ],
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: meta("lobu-redis", o, "store"),
      spec: { selector: redisSelector, ports: [{ name: "redis", port: 6379, targetPort: 6379 }] },
    },
    {
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      metadata: meta("lobu-redis", o, "store"),
      spec: {
        serviceName: "lobu-redis",
        replicas: 1,
        selector: { matchLabels: redisSelector },
        template: {
          metadata: { labels: { ...LABELS, ...redisSelector } },
          spec: {
            securityContext: { runAsNonRoot: true, runAsUser: 999, fsGroup: 999 },
            containers: [
              {
                name: "redis",
                image: o.redisImage,
                args: REDIS_ARGS,
                ports: [{ name: "redis", containerPort: 6379 }],
                readinessProbe: { exec: { command: ["redis-cli", "ping"] }, periodSeconds: 5 },
                volumeMounts: [{ name: "data", mountPath: "/data" }],
              },
            ],
          },
        },
        volumeClaimTemplates: [
          {
            metadata: { name: "data" },
            spec: {
              accessModes: ["ReadWriteOnce"],
              resources: { requests: { storage: o.redisStorage } },
            },
          },
        ],
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: meta("lobu-gateway", o, "gateway"),
      spec: {
        selector,
        ports: [{ name: "http", port: 80, targetPort: "http" }],
      },
    },
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: meta("lobu-gateway", o, "gateway"),
      spec: {
        replicas: o.replicas,
        selector: { matchLabels: selector },
        template: {
          metadata: { labels: { ...LABELS, ...selector } },
          spec: {
            serviceAccountName: "lobu-gateway",
            securityContext: {
              runAsNonRoot: true,
              runAsUser: GATEWAY_UID,
              runAsGroup: GATEWAY_UID,
              fsGroup: GATEWAY_UID,
            },
            containers: [
              {
                name: "gateway",
                image: o.image,
                args: ["run", "--config", PATHS.config],
                ports: [{ name: "http", containerPort: GATEWAY_PORT }],
                env,
                // Provider keys and platform tokens, when the Secret holds them.
                envFrom: [{ secretRef: { name: SECRET_NAME, optional: true } }],
                readinessProbe: probe("/readyz"),
                livenessProbe: { ...probe("/healthz"), failureThreshold: 6 },
                securityContext: {
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ["ALL"] },
                },
                volumeMounts: [
                  { name: "config", mountPath: "/etc/lobu", readOnly: true },
                  { name: "data", mountPath: PATHS.data },
                  { name: "tmp", mountPath: "/tmp" },
                ],
              },
            ],
            volumes: [
              { name: "config", configMap: { name: "lobu-config" } },
              // Per-gateway scratch: shared state is in Redis, sandbox volumes are the driver's PVCs.
              { name: "data", emptyDir: {} },
              { name: "tmp", emptyDir: {} },
            ],
          },
        },
      },
    },
  ];
}

/** What an operator should know about this lobu.toml on a target (printed, not fatal). */
export function warningsFor(d: DeployConfig, target: "compose" | "kubernetes"): string[] {
  const out: string[] = [];
  if (target === "kubernetes" && d.sandboxDriver !== "kubernetes")
    out.push(
      `[sandbox] driver is "${d.sandboxDriver}": on Kubernetes use "kubernetes" (a pod per sandbox); other drivers need a privileged gateway pod, which these manifests do not grant`,
    );
  if (!d.config.gateway.public_url)
    out.push(
      "[gateway] public_url is not set: settings links and platform webhooks need the URL people reach the gateway at",
    );
  return out;
}
