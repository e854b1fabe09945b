import { z } from "zod";
import { ToolPolicy } from "../protocol/worker.ts";
import { Duration, parseDuration } from "./duration.ts";

/**
 * `lobu.toml`: installation config. Keys are snake_case as written in the file, so
 * validation errors name exactly what the user typed. Unknown keys are errors (they
 * are almost always typos). Secrets never live here: they come from the environment
 * or the encrypted secret store.
 */

const Id = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "use lower-case letters, digits, '-' and '_' (max 63)");

/** Domain pattern: `example.com`, `*.example.com` (any subdomain) or `*` (anything). */
export const DomainPattern = z
  .string()
  .regex(
    /^(\*|(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$/i,
    "expected a domain like example.com or *.example.com",
  );

export const NetworkSection = z.strictObject({
  /** Domains reachable through the egress proxy. */
  allow: z.array(DomainPattern).default([]),
  /** Domains never reachable, even if allowed elsewhere (deny wins). */
  deny: z.array(DomainPattern).default([]),
  /**
   * CIDR ranges the operator explicitly lets workers reach although they are
   * private/loopback/link-local (e.g. an internal package mirror). Empty by default.
   */
  allow_private_ranges: z.array(z.string()).default([]),
  /**
   * Patterns allowed although they name a public suffix (`*.github.io` is every
   * GitHub Pages site; see the Public Suffix List). Without this opt-in such
   * patterns are refused in allow lists, skill domains and secret hosts; each one
   * used is logged as a warning at startup.
   */
  allow_public_suffixes: z.array(DomainPattern).default([]),
});
export type NetworkSection = z.infer<typeof NetworkSection>;

/** A tool's policy as lobu.toml writes it: the protocol's ToolPolicy. */
export const ToolPolicyValue = ToolPolicy;

export const PolicySection = z.strictObject({
  /** Policy for tools not named in `tools`. */
  default: ToolPolicyValue.default("allow"),
  /** Per-tool policy, e.g. `{ bash = "ask", write = "allow" }`. */
  tools: z.record(z.string(), ToolPolicyValue).default({}),
  /** How long an approval or question waits before the agent continues without it. */
  request_timeout: Duration.default(900_000),
});
export type PolicySection = z.infer<typeof PolicySection>;

/**
 * A credential exposed to the agent's shell as an environment variable. The
 * agent only ever sees a placeholder; the egress proxy swaps in the real value
 * on requests to `hosts` (which are also allowed implicitly).
 */
export const SecretEnvBinding = z.strictObject({
  /** Secret name in the store (resolved user > agent > installation). */
  secret: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, "letters, digits, '.', '_' or '-'"),
  hosts: z.array(DomainPattern).min(1, "name at least one host where the secret may be sent"),
  /** Where in a request the value may be swapped in (default: header only). */
  locations: z
    .array(z.enum(["header", "url", "body"]))
    .min(1)
    .default(["header"]),
});
export type SecretEnvBinding = z.infer<typeof SecretEnvBinding>;
export const EnvName = z
  .string()
  .regex(
    /^[A-Z_][A-Z0-9_]{0,63}$/,
    "environment variable names are upper-case letters, digits and '_'",
  );

/**
 * A usage limit: a positive whole number, or `"unlimited"` (lifts an installation
 * default for one agent). Absent means "inherit" (for an agent) or "no limit".
 */
const BudgetLimit = z.union([
  z.number().int().positive('use a positive whole number, or "unlimited"'),
  z.literal("unlimited"),
]);

/** Limits of one scope. Tokens are input + output tokens as the provider reported them. */
export const BudgetLimits = z.strictObject({
  /** Tokens per UTC calendar day (resets at 00:00 UTC). */
  tokens_per_day: BudgetLimit.optional(),
  /** Tokens per UTC calendar month (resets on the 1st, 00:00 UTC). */
  tokens_per_month: BudgetLimit.optional(),
  /** Model requests in any rolling 60 seconds. */
  requests_per_minute: BudgetLimit.optional(),
});
export type BudgetLimits = z.infer<typeof BudgetLimits>;

/**
 * Spending limits per agent. `per_user`: what each person may use of one agent;
 * `per_agent`: what everyone together may use of one agent. In `[budgets]` they
 * apply to every agent; `[agents.<id>.budgets]` overrides them limit by limit.
 */
export const BudgetsSection = z.strictObject({
  per_user: BudgetLimits.prefault({}),
  per_agent: BudgetLimits.prefault({}),
});
export type BudgetsSection = z.infer<typeof BudgetsSection>;

/** Prices in USD per million tokens, for cost estimates (never for enforcement). */
export const PriceSection = z.strictObject({
  input: z.number().min(0),
  output: z.number().min(0),
  /** Cached input read (Anthropic cache reads, OpenAI cached prompt tokens); default: `input`. */
  cache_read: z.number().min(0).optional(),
  /** Input written to the cache (Anthropic cache creation); default: `input`. */
  cache_write: z.number().min(0).optional(),
});
export type PriceSection = z.infer<typeof PriceSection>;

/**
 * `[prices."<provider>/<model>"]`; a trailing `*` matches model ids starting
 * with the rest. Keys are checked here (not by a record key schema) so the
 * error names the key and says what is expected.
 */
const Prices = z.record(z.string(), PriceSection).superRefine((prices, ctx) => {
  for (const key of Object.keys(prices)) {
    if (!/^[a-z0-9][a-z0-9_-]{0,62}\/\S+$/.test(key)) {
      ctx.addIssue({
        code: "custom",
        path: [key],
        message: `expected "<provider>/<model>", e.g. "anthropic/claude-sonnet-4-5" or "anthropic/claude-sonnet-4-5*"`,
      });
    }
  }
});

/** A retention period: a duration (`"90d"`, `"12h"`, at least one hour) or `"forever"`. */
const RetentionPeriod = z
  .union([z.string(), z.number()])
  .transform((v, ctx): number | "forever" => {
    if (v === "forever") return v;
    const hint = 'keep data at least 1h (e.g. "12h", "30d"), or "forever"';
    try {
      const ms = parseDuration(v);
      if (ms >= 3_600_000) return ms;
      ctx.addIssue({ code: "custom", message: hint });
    } catch (err) {
      ctx.addIssue({ code: "custom", message: `${(err as Error).message}; ${hint}` });
    }
    return z.NEVER;
  });

/**
 * How long each kind of data is kept (docs/retention.md). In `[retention]` for
 * every agent; `[agents.<id>.retention]` overrides it kind by kind. A sweep
 * deletes what is older, never the data of a running turn.
 */
export const RetentionLimits = z.strictObject({
  /** Conversation history, message records and the sandbox's pi session files. */
  transcripts: RetentionPeriod.optional(),
  /** Turn events (the streams behind SSE and the chat views). */
  events: RetentionPeriod.optional(),
  /** Files in sandbox workspaces, and their snapshots. */
  files: RetentionPeriod.optional(),
  /** Usage records and daily usage counters. */
  usage: RetentionPeriod.optional(),
  /** Audit records. */
  audit: RetentionPeriod.optional(),
});
export type RetentionLimits = z.infer<typeof RetentionLimits>;

/** `[retention]`: the installation's defaults and how often the sweep runs. */
export const RetentionSection = RetentionLimits.extend({
  /** How often each gateway looks for expired data (one gateway sweeps at a time). */
  sweep_interval: Duration.default(3_600_000),
});
export type RetentionSection = z.infer<typeof RetentionSection>;

export const BUILTIN_TOOLS = ["bash", "read", "write", "edit", "grep", "find", "ls"] as const;

/** `platform:workspace:id`: a person (`slack:T012:U034`, `telegram::123`, `api::alice`) or a channel. */
export const PlatformKey = z
  .string()
  .max(300)
  .regex(
    /^[a-z0-9_-]+:[^:]*:.+$/,
    "expected platform:workspace:id, e.g. slack:T012:C034 or telegram::-1001234",
  );

/** Who one list names; a person or channel is on the list when any part names them. */
export const AccessList = z.strictObject({
  /** People by user key (`slack:T012:U034`, `telegram::123456`, `api::alice`). */
  users: z.array(PlatformKey).max(10_000).default([]),
  /**
   * Platform groups: Slack user groups (`slack:T012:S0567`), and on every
   * platform `<platform>:<workspace>:admins` (Slack workspace admins and
   * owners, Telegram administrators of the chat the message is in).
   */
  groups: z.array(PlatformKey).max(1_000).default([]),
  /** Email domains from the platform profile (Slack `users.info`); `*.example.com` takes subdomains. */
  email_domains: z.array(DomainPattern).max(1_000).default([]),
  /** Channels and groups by `platform:workspace:channel` (`slack:T012:C034`, `telegram::-1001234`). */
  channels: z.array(PlatformKey).max(10_000).default([]),
});
export type AccessList = z.infer<typeof AccessList>;

/**
 * Who may use an agent, checked by the gateway before a message is stored
 * (docs/admin.md, Access control). Deny wins over allow. Empty allow lists
 * allow everyone (people) and every channel; bots and deactivated accounts
 * are always refused.
 */
export const AccessSection = z.strictObject({
  allow: AccessList.prefault({}),
  deny: AccessList.prefault({}),
  /** Direct messages with the agent. */
  direct_messages: z.boolean().default(true),
  /** Guest accounts (Slack single- and multi-channel guests). */
  guests: z.boolean().default(false),
  /**
   * Channels shared with another organization (Slack Connect) where the agent
   * answers anyway; every other external channel is refused (fail closed).
   */
  external_channels: z.array(PlatformKey).max(1_000).default([]),
});
export type AccessSection = z.infer<typeof AccessSection>;

/** The name and picture an agent answers with, where the platform lets one app post as several (Slack `chat:write.customize`). */
export const PersonaSection = z.strictObject({
  name: z.string().min(1).max(80).optional(),
  icon_url: z.url().max(2_000).optional(),
});
export type PersonaSection = z.infer<typeof PersonaSection>;

/** `"<provider>/<model>"`. */
const ProviderModel = z
  .string()
  .max(300)
  .regex(
    /^[a-z0-9][a-z0-9_-]{0,62}\/\S+$/,
    'expected "<provider>/<model>", e.g. "openai/gpt-4.1-mini"',
  );

/**
 * A model an agent may use: `"<provider>/<model>"`, `"<provider>/*"` (every
 * model of the provider), a trailing `*` for a prefix, or a bare model id
 * (that model on any provider).
 */
const ModelPattern = z.string().min(1).max(200);

export const AgentSection = z.strictObject({
  name: z.string().min(1).max(80).optional(),
  description: z.string().max(500).default(""),
  /** Provider id from [providers.*] or a built-in one (`anthropic`, `openai`). */
  provider: z.string().optional(),
  model: z.string().optional(),
  /**
   * Models the agent may use besides its own `model`: what people may pick on
   * the settings page, and what the LLM relay forwards (every other model is
   * refused). Empty here and in `[providers.*] models`: people pick from the
   * catalogue of every provider with a key.
   */
  models: z.array(ModelPattern).max(100).default([]),
  /**
   * Models a turn switches to, in order, when its provider is rate limited
   * (429), overloaded (529, 503) or down (5xx, unreachable): `"<provider>/<model>"`
   * of the same wire format (docs/providers.md, Failover).
   */
  fallback: z.array(ProviderModel).max(10).default([]),
  /** Largest output (`max_tokens`, `max_completion_tokens`) one model call may ask for. */
  max_output_tokens: z.number().int().min(1).max(1_000_000).default(8192),
  /** Model calls one sandbox may have in flight at once; more are refused with 429. */
  max_parallel_model_calls: z.number().int().min(1).max(64).default(4),
  system_prompt: z.string().max(100_000).optional(),
  tools: z.array(z.enum(BUILTIN_TOOLS)).default([...BUILTIN_TOOLS]),
  skills: z.array(z.string()).default([]),
  /** In group channels: one sandbox per user (default) or one shared per channel. */
  group_routing: z.enum(["per-user", "per-channel"]).default("per-user"),
  network: NetworkSection.prefault({}),
  policy: PolicySection.prefault({}),
  /** Credentials for the agent's shell: `GITHUB_TOKEN = { secret = "github", hosts = ["api.github.com"] }`. */
  secrets: z.record(EnvName, SecretEnvBinding).default({}),
  /** Overrides of the installation's `[budgets]` for this agent, limit by limit. */
  budgets: BudgetsSection.prefault({}),
  /** Overrides of the installation's `[retention]` for this agent, kind by kind. */
  retention: RetentionLimits.prefault({}),
  /** Who may use the agent, and in which channels (see AccessSection). */
  access: AccessSection.prefault({}),
  /** The name and picture replies carry (Slack needs `chat:write.customize`). */
  persona: PersonaSection.optional(),
  /**
   * Channel admins (Slack workspace admins and owners, Telegram group
   * administrators) may bind a channel to this agent with a command
   * (`@bot bind <agent>`, `/bind <agent>`). Off: only lobu.toml binds it.
   */
  bindable: z.boolean().default(false),
});
export type AgentSection = z.infer<typeof AgentSection>;

/** What the catalogue cannot know about a model (a local or custom one), or corrects. */
export const ModelInfoSection = z.strictObject({
  context_window: z.number().int().min(1_000).max(100_000_000).optional(),
  max_output_tokens: z.number().int().min(1).max(10_000_000).optional(),
  /** The model takes images. */
  images: z.boolean().optional(),
  reasoning: z.boolean().optional(),
});
export type ModelInfoSection = z.infer<typeof ModelInfoSection>;

export const ProviderSection = z.strictObject({
  /** Wire format and authentication (docs/providers.md); may be left out for a built-in provider's id (`[providers.groq]`). */
  type: z
    .enum(["anthropic", "openai", "openai-responses", "gemini", "vertex", "bedrock", "azure"])
    .optional(),
  base_url: z.url().optional(),
  /** AWS region (`bedrock`) or Google Cloud location (`vertex`). */
  region: z
    .string()
    .regex(/^[a-z0-9-]{1,40}$/, "expected a region such as us-east-1 or europe-west4")
    .optional(),
  /** Google Cloud project (`vertex`); default: the service-account key's own. */
  project: z
    .string()
    .regex(/^[a-z0-9.:-]{1,100}$/, "expected a Google Cloud project id")
    .optional(),
  /** Environment variable holding the key (never the key itself). */
  api_key_env: z.string().optional(),
  default_model: z.string().optional(),
  /**
   * Models people may pick of this provider (`"gpt-4.1*"` takes a prefix, `"*"`
   * every model); merged with the agent's `models` (docs/providers.md).
   */
  models: z.array(z.string().min(1).max(200)).max(200).default([]),
  /** Per model: context window, output limit, images (local and custom models). */
  model_info: z.record(z.string().min(1).max(200), ModelInfoSection).default({}),
});
export type ProviderSection = z.infer<typeof ProviderSection>;

export const SkillSection = z.strictObject({
  description: z.string().default(""),
  /** Instructions added to the agent's system prompt when the skill is installed. */
  instructions: z.string().default(""),
  /**
   * A SKILL.md (relative to lobu.toml) used instead of `instructions`, or a
   * skill folder holding one. A file named SKILL.md, or a folder, is a skill
   * folder: its files are shown to the agent read-only (see docs/skills.md).
   */
  path: z.string().optional(),
  /** Domains the skill needs; allowed for agents that install it. */
  domains: z.array(DomainPattern).default([]),
  /** Nix packages the skill needs. */
  packages: z.array(z.string()).default([]),
  /** MCP server ids (from [mcp.*]) the skill uses. */
  mcp: z.array(z.string()).default([]),
  /** Environment variables (secrets) the skill expects; bind them in [agents.<id>.secrets]. */
  secrets: z.array(EnvName).default([]),
});
export type SkillSection = z.infer<typeof SkillSection>;

/** How long a client may take to send (part of) a request: at least a second. */
const ClientTimeout = Duration.refine((ms) => ms >= 1_000, "must be at least 1s");

export const GatewaySection = z.strictObject({
  host: z.string().default("127.0.0.1"),
  port: z.number().int().min(0).max(65535).default(8080),
  /** Base URL people's browsers use to reach the gateway (settings links, webhooks). */
  public_url: z.url().optional(),
  data_dir: z.string().default(".lobu"),
  /**
   * Longest a client may take to send a request's headers (at most
   * request_timeout), and the whole request: connections dribbling bytes
   * (slowloris) are answered 408 and closed. Responses (SSE) are not limited.
   */
  headers_timeout: ClientTimeout.default(20_000),
  request_timeout: ClientTimeout.default(60_000),
  /** Largest inbound user message, in bytes. */
  max_message_bytes: z.number().int().positive().max(1_048_576).default(32_768),
  /**
   * Event streams (SSE) one API token may hold open at once on this gateway.
   * Each open stream holds a store reader (a Redis connection on Redis).
   */
  max_streams_per_token: z.number().int().min(1).max(100_000).default(64),
  /** Event streams one client address may hold open at once on this gateway (all tokens together). */
  max_streams_per_address: z.number().int().min(1).max(100_000).default(128),
});

export const StoreSection = z.strictObject({
  driver: z.enum(["sqlite", "redis"]).default("sqlite"),
  redis_url: z.string().optional(),
  key_prefix: z.string().default("lobu:"),
});

/**
 * Several gateways sharing one Redis store (docs/deploy/multi-gateway.md). Each
 * sandbox runs on one gateway at a time, under a placement lease; the other
 * gateways leave its messages to that one.
 */
export const ClusterSection = z
  .strictObject({
    /**
     * How long a gateway's hold on a running message and on a sandbox lasts
     * without being renewed (renewed every third of it): a gateway that dies
     * hands its conversations to a survivor after at most this long.
     */
    lease: Duration.default(30_000),
    /**
     * Where sandbox volumes and their snapshots live. `local`: under the data
     * dir (one gateway, or gateways that never take over each other's
     * conversations). `shared`: under `path`, a directory every gateway mounts
     * (NFS, CephFS, EFS, a shared disk), so a conversation keeps its workspace
     * whichever gateway runs it, and after a gateway dies.
     */
    volumes: z.enum(["local", "shared", "s3"]).default("local"),
    /** The shared directory for `volumes = "shared"` (absolute). */
    volumes_path: z.string().optional(),
    /**
     * `volumes = "s3"`: each stopped sandbox's volume is saved as an archive in
     * this S3-compatible bucket and fetched by the gateway that starts it next.
     * Credentials come from the AWS environment (AWS_ACCESS_KEY_ID, ...).
     */
    s3: z
      .strictObject({
        bucket: z.string().min(3).max(63),
        /** Key prefix of the objects, e.g. `lobu/`. */
        prefix: z.string().max(200).default(""),
        /** Another S3-compatible service (MinIO, R2, GCS interop...). */
        endpoint: z.url().optional(),
        region: z.string().default("us-east-1"),
        /** `https://host/bucket/key` URLs (most services other than AWS want them). */
        force_path_style: z.boolean().default(false),
      })
      .optional(),
  })
  .refine((c) => c.volumes !== "shared" || (c.volumes_path?.startsWith("/") ?? false), {
    message: 'volumes = "shared" needs volumes_path, an absolute directory every gateway mounts',
    path: ["volumes_path"],
  })
  .refine((c) => c.volumes !== "s3" || c.s3 !== undefined, {
    message: 'volumes = "s3" needs [cluster.s3] with the bucket',
    path: ["s3"],
  });

/** A name for an OCI runtime or a Kubernetes RuntimeClass (`runc`, `runsc`, `kata`, `gvisor`...). */
const RuntimeName = z
  .string()
  .regex(
    /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/,
    "expected a runtime name such as runc, runsc or kata",
  );

/** A Kubernetes object name (RFC 1123 label). */
const K8sName = z
  .string()
  .regex(
    /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
    "expected a Kubernetes name (lowercase letters, digits, '-')",
  );

/** An OCI image reference (`repo/name:tag`, `name@sha256:...`). */
const ImageRef = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$/,
    "expected an image reference such as lobu-sandbox:latest",
  );

export const DockerSandboxSection = z.strictObject({
  /** The sandbox image: the userland agents' tools run in (the worker itself is mounted from the gateway). */
  image: ImageRef.default("lobu-sandbox:latest"),
  /** OCI runtime dockerd runs containers with: `runc`, `runsc` (gVisor), `kata`, or another registered one. */
  runtime: RuntimeName.default("runc"),
  /** The Engine API socket. */
  socket: z.string().startsWith("/").default("/var/run/docker.sock"),
  /** Size of each container's writable /tmp (tmpfs), MiB. */
  tmp_mb: z.number().int().min(1).max(65_536).default(64),
});

export const KubernetesSandboxSection = z.strictObject({
  /** Namespace the sandboxes' pods, PVCs and NetworkPolicies live in. */
  namespace: K8sName.default("lobu-sandboxes"),
  /** The sandbox image: must hold node 24 and the `@lobu/worker` package (docs/sandboxing.md). */
  image: ImageRef.default("lobu-sandbox:latest"),
  /** Command that starts the worker in the image. */
  command: z.array(z.string().min(1)).min(1).default(["node", "/opt/lobu/worker/main.js"]),
  /** RuntimeClass of the pods (`gvisor` on GKE Sandbox, `kata`...); empty: the cluster's default. */
  runtime_class: z.union([K8sName, z.literal("")]).default("gvisor"),
  /** StorageClass of each sandbox's PVC; empty: the cluster's default. */
  storage_class: z.union([K8sName, z.literal("")]).default(""),
  /**
   * Where pods dial the gateway's worker endpoint (`tcp://host:port`, e.g. the
   * gateway Service); the gateway listens on `worker_listen`.
   */
  gateway_address: z
    .string()
    .regex(/^tcp:\/\/[A-Za-z0-9.-]+:\d{1,5}$/, "expected tcp://host:port")
    .default("tcp://lobu-gateway.lobu.svc:8090"),
  /** Host and port the gateway's worker endpoint listens on. */
  worker_listen: z
    .string()
    .regex(/^[A-Za-z0-9.:[\]-]+:\d{1,5}$/, "expected host:port")
    .default("0.0.0.0:8090"),
  /** Labels of the gateway's pods: the NetworkPolicy lets sandboxes reach only these, on the worker port. */
  gateway_labels: z
    .record(z.string(), z.string())
    .default({ "app.kubernetes.io/name": "lobu-gateway" }),
  /** Namespace the gateway runs in (for the NetworkPolicy's namespaceSelector). */
  gateway_namespace: K8sName.default("lobu"),
  /** Kubeconfig file; empty: in-cluster service account, else ~/.kube/config. */
  kubeconfig: z.string().default(""),
});

export const SandboxSection = z.strictObject({
  /**
   * `process` (namespaces + cgroups), `virtual` (just-bash, pooled), `host` (no
   * isolation), `docker` (a container per sandbox), `kubernetes` (a pod per
   * sandbox) or `auto`: `process` where it works here, else `virtual`.
   */
  driver: z.enum(["auto", "process", "virtual", "host", "docker", "kubernetes"]).default("auto"),
  /** Stop a sandbox after this long without messages. */
  idle_timeout: Duration.default(600_000),
  /**
   * How the `process` driver runs agents: `own` (a sandbox with its own agent
   * runtime per conversation) or `pooled` (agent loops share the pool
   * processes; each conversation's bash commands run in a bubblewrap sandbox
   * of its own over its volume, started per command). docs/sandboxing.md.
   */
  process_mode: z.enum(["own", "pooled"]).default("own"),

  /** Turns running at once across all sandboxes; more wait in the queue. */
  max_concurrent: z.number().int().positive().max(10_000).default(16),
  memory_mb: z.number().int().min(64).default(1024),
  cpus: z.number().positive().default(1),
  pids: z.number().int().min(16).default(256),
  disk_mb: z.number().int().min(16).default(2048),
  /** The `host` driver runs agents without isolation; it must be opted into explicitly. */
  allow_unsandboxed: z.boolean().default(false),
  /** Worker processes in the `virtual` pool. */
  pool_size: z.number().int().min(1).max(64).default(2),
  /** The `docker` driver: a container per sandbox (docs/sandboxing.md). */
  docker: DockerSandboxSection.prefault({}),
  /** The `kubernetes` driver: a pod per sandbox (docs/sandboxing.md). */
  kubernetes: KubernetesSandboxSection.prefault({}),
});

/** An HTTP header name for [mcp.<id>] headers. */
const HeaderName = z
  .string()
  .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$/, "expected an HTTP header name");

/** A tool name pattern of [mcp.<id>] tools: the server's own tool name, `*` matching any characters. */
const McpToolPattern = z
  .string()
  .regex(/^[A-Za-z0-9_.*-]{1,128}$/, "expected a tool name, * matching any characters");

/**
 * A remote (streamable HTTP, or legacy HTTP+SSE) or local (stdio) MCP server
 * (docs/mcp.md). The gateway is the MCP client: each person connects their own
 * account (OAuth 2.1 per the MCP authorization spec) unless `headers` gives
 * the whole team one static credential.
 */
export const McpSection = z
  .strictObject({
    description: z.string().max(500).default(""),
    /** The server's streamable-HTTP endpoint (a legacy HTTP+SSE endpoint works too). */
    url: z.url().optional(),
    /** `auto`: streamable HTTP, falling back to HTTP+SSE when the server does not speak it. */
    transport: z.enum(["auto", "streamable-http", "sse"]).default("auto"),
    /**
     * Static headers sent to the server, for a team-wide service account. A
     * value may name installation secrets as `${secret:NAME}` (`lobu secrets
     * set NAME`), e.g. `Authorization = "Bearer ${secret:LINEAR_TOKEN}"`. With
     * headers, one connection serves everyone and no person connects an account.
     */
    headers: z.record(HeaderName, z.string().max(4096)).default({}),
    /**
     * A client registered with the server's authorization server ahead of
     * time; without it the gateway registers itself (RFC 7591) when the server
     * supports that. `client_secret` names an installation secret.
     */
    oauth: z
      .strictObject({
        client_id: z.string().min(1).max(500),
        client_secret: z
          .string()
          .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, "expected a secret name")
          .optional(),
        scopes: z.array(z.string().min(1).max(200)).default([]),
      })
      .optional(),
    /** Policy of this server's tools that `tools` does not name (the agent's policy wins when it names the tool). */
    policy: ToolPolicyValue.default("ask"),
    /** Policy per tool name or pattern (`get_*`), the server's own tool names; the most specific pattern wins. */
    tools: z.record(McpToolPattern, ToolPolicyValue).default({}),
    /** A stdio server: the program run inside the person's sandbox (e.g. `npx`), with `args`. */
    command: z.string().min(1).max(200).optional(),
    args: z.array(z.string().max(1000)).max(50).default([]),
    /** Longest one tool call may take. */
    timeout: Duration.default(120_000),
  })
  .refine((s) => (s.url === undefined) !== (s.command === undefined), {
    message: "set either url (a remote server) or command (a stdio server), not both",
  });
export type McpSection = z.infer<typeof McpSection>;

/** A Nix attribute name (`jq`, `python312Packages.requests`), or a pattern with `*` (`python312Packages.*`). */
const PackagePattern = z
  .string()
  .regex(
    /^[A-Za-z0-9_*][A-Za-z0-9._+*-]{0,99}$/,
    "expected a Nix attribute name like jq or python312Packages.requests (* matches any characters)",
  );

/**
 * Nix packages for agents (docs/packages.md): what people choose on the
 * settings page and what skills need is built by the gateway with Nix into a
 * profile per agent and person, and shown read-only to their `process`
 * sandboxes on PATH. Off unless `enabled`; needs Nix on the gateway host.
 */
export const PackagesSection = z.strictObject({
  enabled: z.boolean().default(false),
  /**
   * The package set names resolve against: a path to a Nix file or directory
   * (relative to lobu.toml), `<name>` from NIX_PATH, `channel:<name>`, an
   * https URL of a tarball, or a flake reference (`github:NixOS/nixpkgs/nixos-25.05`).
   * Pin it (a release channel, a commit tarball or a locked flake) in production.
   */
  nixpkgs: z.string().min(1).default("channel:nixos-unstable"),
  /** Binary caches tried before building (nix.conf `substituters`); empty: build everything. */
  substituters: z.array(z.string()).default(["https://cache.nixos.org"]),
  /** Keys the caches' paths must be signed with (nix.conf `trusted-public-keys`). */
  trusted_public_keys: z
    .array(z.string())
    .default(["cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="]),
  /** Packages people and skills may ask for; empty: every package of the set. */
  allow: z.array(PackagePattern).default([]),
  /** Packages never provided, even if allowed (deny wins). */
  deny: z.array(PackagePattern).default([]),
  /** Longest one package may take to download and build. */
  build_timeout: Duration.default(1_800_000),
  /** Largest closure (a package with everything it needs at run time) accepted, in MB. */
  max_closure_mb: z.number().int().min(1).default(4096),
  /** How often profiles nobody uses any more are removed and the store is garbage-collected. */
  gc_interval: Duration.default(86_400_000),
  /**
   * The Nix store and state directories (NIX_STORE_DIR, NIX_STATE_DIR). Only
   * the default /nix/store can use binary caches (store paths embed it);
   * another one builds everything from source (tests, air-gapped hosts).
   */
  store_dir: z.string().default("/nix/store"),
  state_dir: z.string().default("/nix/var/nix"),
  /** More nix.conf settings passed to every Nix command (`sandbox-paths`, `cores`, `max-jobs`). */
  options: z.record(z.string().regex(/^[a-z][a-z0-9-]*$/), z.string()).default({}),
});
export type PackagesSection = z.infer<typeof PackagesSection>;

/**
 * What an agent is given of the conversation around a message (docs/context.md):
 * when it is mentioned in an existing thread, the thread's earlier messages,
 * newest kept within these limits, and the `channel_history` tool's pages.
 */
export const ContextSection = z.strictObject({
  /** Earlier messages of the thread given with a message; 0 gives none. */
  max_messages: z.number().int().min(0).max(1000).default(50),
  /** Characters of those messages (text and the attachment lines), newest kept. */
  max_chars: z.number().int().min(0).max(1_000_000).default(20_000),
  /** Messages one `channel_history` call returns at most. */
  page_size: z.number().int().min(1).max(200).default(50),
});
export type ContextSection = z.infer<typeof ContextSection>;

export const TelemetrySection = z.strictObject({
  otlp_endpoint: z.url().optional(),
  service_name: z.string().default("lobu-gateway"),
});

/**
 * Schedules and reminders (docs/schedules.md): the `schedule` tool runs a turn
 * later in the conversation that asked, once or on a cron pattern. Limits
 * bound what one person can keep scheduled per agent.
 */
export const SchedulesSection = z.strictObject({
  enabled: z.boolean().default(true),
  /** Schedules one person may have pending per agent. */
  max_per_person: z.number().int().min(1).max(10_000).default(25),
  /** Shortest gap between two runs of a recurring schedule. */
  min_interval: Duration.refine((ms) => ms >= 60_000, "must be at least 1m").default(3_600_000),
  /** How far ahead a one-time schedule may be set. */
  max_horizon: Duration.refine((ms) => ms >= 60_000, "must be at least 1m").default(
    366 * 86_400_000,
  ),
  /** Longest text a schedule carries (the message its turn gets), in characters. */
  max_text_chars: z.number().int().min(10).max(8_000).default(2_000),
  /** Time zone when a schedule names none (an IANA name such as Europe/Berlin). */
  default_timezone: z
    .string()
    .refine(isTimeZone, "expected an IANA time zone such as Europe/Berlin or UTC")
    .default("UTC"),
  /** How often each gateway looks for schedules that are due (it also wakes for the next one it knows). */
  poll_interval: Duration.refine((ms) => ms >= 100, "must be at least 100ms").default(15_000),
});
export type SchedulesSection = z.infer<typeof SchedulesSection>;

/**
 * A person's long-term memory per agent (docs/memory.md): facts and
 * preferences the agent keeps with `remember` and finds with `recall`,
 * stored encrypted, bounded per person.
 */
export const MemorySection = z.strictObject({
  enabled: z.boolean().default(true),
  /** Entries one person may keep per agent. */
  max_entries: z.number().int().min(1).max(2_000).default(200),
  /** Longest entry, in characters. */
  max_entry_chars: z.number().int().min(10).max(4_000).default(1_000),
});
export type MemorySection = z.infer<typeof MemorySection>;

/**
 * Linking a person's identities (docs/identity.md). `[identity.oidc]`: the
 * team's OpenID Connect provider; identities that sign in on their settings
 * page with the same subject are linked into one account.
 */
export const IdentitySection = z.strictObject({
  oidc: z
    .strictObject({
      /** The issuer URL (its `/.well-known/openid-configuration` is read). */
      issuer: z.url(),
      client_id: z.string().min(1),
      /** Omit for a public client; or set LOBU_OIDC_CLIENT_SECRET. */
      client_secret: z.string().min(1).optional(),
      /** Shown on the settings page's button. */
      name: z.string().min(1).max(60).default("your organization"),
    })
    .optional(),
});
export type IdentitySection = z.infer<typeof IdentitySection>;

/** An IANA time zone name this runtime knows. */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** Who may use the admin UI without an API token (they open it from their settings page). */
export const AdminSection = z.strictObject({
  /** User keys `platform:workspace:user`, e.g. `slack:T012:U034` or `telegram::123456`. */
  users: z
    .array(
      z
        .string()
        .regex(/^[a-z0-9_-]+:[^:]*:.+$/, "expected platform:workspace:user")
        // API identities in a namespace are minted by client tokens; only admin tokens'
        // (the empty namespace, `api::name`) may be admins. See docs/api.md, Roles.
        .refine((key) => !/^api:[^:]+:/.test(key), {
          message:
            "an api user in a namespace (api:<namespace>:<user>) cannot be an admin: client tokens mint those; use api::<user> (minted by admin tokens) or a Slack/Telegram user",
        }),
    )
    .default([]),
});

/**
 * Files people attach to messages (written into the conversation's sandbox at
 * `~/inbox/<date>/`) and files the agent sends back (`send_file`); see docs/files.md.
 */
export const FilesSection = z.strictObject({
  /** Largest attachment the gateway takes in, in MiB; larger ones are refused with a message. */
  max_file_mb: z.number().int().min(1).max(1024).default(20),
  /** Most bytes a conversation's `~/inbox` may hold, in MiB; the agent frees room by deleting files. */
  max_conversation_mb: z.number().int().min(1).max(65_536).default(200),
  /** Most attachments one message may carry; the rest are refused with a message. */
  max_files_per_message: z.number().int().min(1).max(100).default(10),
  /**
   * MIME types taken in (`type/subtype`, `type/*` or `*\/*`); others are refused
   * with a message. The type is the platform's, or else guessed from the name.
   */
  allowed_types: z
    .array(
      z
        .string()
        .regex(
          /^(\*|[a-z0-9.+-]+)\/(\*|[a-z0-9.+-]+)$/i,
          "a MIME type such as text/csv or image/*",
        ),
    )
    .min(1)
    .default(["*/*"]),
  /** Largest file the agent may send with `send_file`, in MiB. */
  max_send_mb: z.number().int().min(1).max(1024).default(20),
  /** Pictures are also shown to the model as images (turn off for text-only models). */
  images_to_model: z.boolean().default(true),
  /** How long a file sent to a REST client stays downloadable. */
  download_ttl: Duration.refine((ms) => ms >= 60_000, "must be at least 1m").default(86_400_000),
});
export type FilesSection = z.infer<typeof FilesSection>;
/** When the agent answers a channel message that does not mention it (ambient mode). */
export const AmbientSection = z.strictObject({
  /**
   * `off` (only mentions), `questions` (the message ends with "?" or starts
   * with a question word), `keywords` (it names one of `keywords`) or `all`.
   */
  mode: z.enum(["off", "questions", "keywords", "all"]).default("off"),
  keywords: z.array(z.string().min(1).max(100)).max(200).default([]),
  /** Ambient answers per minute in the channel; more messages are left alone. */
  per_minute: z.number().int().min(1).max(600).default(5),
});
export type AmbientSection = z.infer<typeof AmbientSection>;

/**
 * `[channels."<platform>:<workspace>:<channel>"]`: one channel bound to an
 * agent, with what it changes for that channel. Tools not in `tools` are not
 * offered to the model at all there.
 */
export const ChannelSection = z.strictObject({
  /** The agent that answers in this channel (instead of the platform's default). */
  agent: Id.optional(),
  persona: PersonaSection.optional(),
  /** Replaces the agent's system prompt in this channel. */
  system_prompt: z.string().max(100_000).optional(),
  model: z.string().min(1).max(200).optional(),
  /** The only tools (built-in and gateway tools) offered in this channel; absent: the agent's. */
  tools: z
    .array(z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, "a tool name like bash or read"))
    .max(200)
    .optional(),
  ambient: AmbientSection.prefault({}),
});
export type ChannelSection = z.infer<typeof ChannelSection>;

const Channels = z.record(z.string(), ChannelSection).superRefine((channels, ctx) => {
  for (const key of Object.keys(channels)) {
    if (!PlatformKey.safeParse(key).success) {
      ctx.addIssue({
        code: "custom",
        path: [key],
        message:
          'expected "<platform>:<workspace>:<channel>", e.g. "slack:T012:C034" or "telegram::-1001234"',
      });
    }
  }
});

export const LobuConfig = z.strictObject({
  gateway: GatewaySection.prefault({}),
  store: StoreSection.prefault({}),
  sandbox: SandboxSection.prefault({}),
  /** Several gateways as one (see ClusterSection). */
  cluster: ClusterSection.prefault({}),
  network: NetworkSection.prefault({}),
  providers: z.record(Id, ProviderSection).default({}),
  agents: z.record(Id, AgentSection).default({}),
  skills: z.record(Id, SkillSection).default({}),
  /** Platform adapter settings, validated by each adapter. */
  platforms: z.record(z.string(), z.record(z.string(), z.unknown())).default({}),
  /** Thread and channel history given to agents (see ContextSection). */
  context: ContextSection.prefault({}),
  /** MCP servers people can connect from the settings page and skills can name. */
  mcp: z.record(Id, McpSection).default({}),
  /** Nix packages for agents' sandboxes (see PackagesSection). */
  packages: PackagesSection.prefault({}),
  telemetry: TelemetrySection.prefault({}),
  /** Attachments in, files out (see FilesSection). */
  files: FilesSection.prefault({}),
  admin: AdminSection.prefault({}),
  /** Usage limits for every agent (see BudgetsSection). */
  budgets: BudgetsSection.prefault({}),
  /** USD per million tokens per `"<provider>/<model>"`, for the usage report's cost estimates. */
  prices: Prices.default({}),
  /** How long data is kept, for every agent (see RetentionSection). */
  retention: RetentionSection.prefault({}),
  /** Schedules and reminders (see SchedulesSection). */
  schedules: SchedulesSection.prefault({}),
  /** People's long-term memory per agent (see MemorySection). */
  memory: MemorySection.prefault({}),
  /** Per-channel agents, personas, tool sets and ambient mode (see ChannelSection). */
  channels: Channels.default({}),
  /** Linking a person's identities (see IdentitySection). */
  identity: IdentitySection.prefault({}),
});
export type LobuConfig = z.infer<typeof LobuConfig>;
export type LobuConfigInput = z.input<typeof LobuConfig>;
