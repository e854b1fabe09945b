/**
 * Wire shapes the browser UIs (packages/web) read from the gateway's settings
 * and admin APIs. Types only, and only type imports, so the web bundle can
 * share them without bundling anything.
 */
import type { CapabilityKind } from "./protocol/events.ts";
import type { RequestStatus } from "./protocol/requests.ts";
import type { ToolPolicy as ToolPolicyName } from "./protocol/worker.ts";

export type { CapabilityKind } from "./protocol/events.ts";
export type {
  ApprovalChoice,
  CapabilityChoice,
  DecisionChoice,
  RequestOutcome,
  RequestStatus,
} from "./protocol/requests.ts";

export type { ToolPolicy as ToolPolicyName } from "./protocol/worker.ts";

/**
 * What the settings page shows: the person's own settings for one agent next
 * to what the agent definition and the installation already give them (which
 * they can see but not change). Never contains a secret value, only hints.
 */
export interface SettingsView {
  user: { userKey: string; name?: string; platform: string };
  agent: { id: string; name: string; description: string };
  /** The configured admins may open the admin UI from here. */
  isAdmin: boolean;
  model: {
    provider?: string;
    model?: string;
    agentProvider?: string;
    agentModel?: string;
    /**
     * The models the person may pick: allowed by the operator (lobu.toml
     * `models`) and of a provider with a key (theirs or the team's), with what
     * the model catalogue says of each.
     */
    choices: {
      provider: string;
      model: string;
      name: string;
      contextWindow: number;
      maxOutputTokens: number;
      images: boolean;
      reasoning: boolean;
      /** USD per million tokens; null when the catalogue has no price. */
      price: { input: number; output: number } | null;
    }[];
    providers: {
      id: string;
      /** Display name (`OpenRouter`). */
      name: string;
      type: string;
      defaultModel: string;
      /** The operator allows some model of it for this agent (a key for it can be used). */
      allowed: boolean;
      /** The person's own key (masked), if they added one. */
      userKey: { hint: string; updatedAt: number } | null;
      /** Whether the team already provides a key (installation or agent). */
      sharedKey: boolean;
    }[];
  };
  skills: {
    catalog: {
      name: string;
      description: string;
      domains: string[];
      packages: string[];
      mcp: string[];
      /** Environment variables (secrets) the skill expects. */
      secrets: string[];
    }[];
    /** Installed by the person. */
    installed: string[];
    /** Installed for everyone by the agent definition. */
    fromAgent: string[];
  };
  mcp: {
    servers: {
      id: string;
      description: string;
      /**
       * The person's own connection, as the server answers: `connected` (with
       * their account, or the server needs none), `needs_authorization` (never
       * connected, or the server refused the tokens), `error` (the server could
       * not be reached), `shared` (a team account: nobody connects), `stdio`
       * (a local server, run inside the person's sandbox), `stdio_unavailable`
       * (a local server, but this gateway's sandboxes run no programs: the
       * virtual tier).
       */
      status:
        | "connected"
        | "needs_authorization"
        | "error"
        | "shared"
        | "stdio"
        | "stdio_unavailable";
    }[];
    /** The servers the person added to this agent. */
    connected: string[];
    /** The servers the agent's and the person's skills bring. */
    fromSkills: string[];
  };
  packages: {
    installed: string[];
    fromSkills: string[];
    /** Where each package (installed or from a skill) stands on this gateway. */
    status: Record<string, PackageStatusView>;
    /** Why packages cannot be used here (not enabled, no Nix, a tier without programs). */
    unavailable?: string;
  };
  domains: { user: string[]; agent: string[]; installation: string[]; denied: string[] };
  tools: {
    name: string;
    /** What the agent definition says. */
    agentPolicy: ToolPolicyName;
    /** The person's answer for an "ask" tool, if any. */
    userChoice?: ToolPolicyName;
    effective: ToolPolicyName;
  }[];
  /** The person's other secrets for this agent (provider keys are in `model`). */
  secrets: { name: string; hint: string; updatedAt: number }[];
}

/** One Nix package's state: waiting, building (with progress), ready (with version) or failed (why). */
export type PackageStatusView =
  | { state: "queued" }
  | { state: "building"; detail: string }
  | { state: "ready"; version: string }
  | { state: "failed"; reason: string; log: string[] };

export interface RequestView {
  requestId: string;
  agentId: string;
  status: RequestStatus;
  createdAt: number;
  event:
    | { type: "capability_request"; kind: CapabilityKind; value: string; reason: string }
    | {
        type: "approval_request";
        tool: string;
        /** One line: the tool and the size of its input. */
        summary?: string;
        /** The whole input as it will run, hidden characters made visible (`⟦…⟧`). */
        display?: string;
        /** False when the input is too long to show in full: it can only be denied. */
        displayComplete?: boolean;
      }
    | { type: "question"; prompt: string };
  answer?: { choice?: string; by?: string };
}

/** Model use as the LLM relay metered it. */
export interface UsageCounts {
  inputTokens: number;
  outputTokens: number;
  requests: number;
}

/** A person with conversations, as the admin UI lists them (usage: all time). */
export interface UserRow extends UsageCounts {
  userKey: string;
  platform: string;
  name?: string;
  agents: string[];
  conversations: number;
  lastMessageAt: number;
}

/** Identities linked into one account (docs/identity.md): the primary first. */
export interface LinkedAccountRow {
  /** The primary identity's user key: what the account's data is kept under. */
  account: string;
  identities: string[];
}

/** Token use of one day (or period), agent, person, provider and model, with its estimated cost. */
export interface UsageRow extends UsageCounts {
  agentId: string;
  /** `-` when the relay did not know the person. */
  userKey: string;
  provider: string;
  /** "" for usage recorded before models were counted. */
  model: string;
  /** Of `inputTokens`: read from / written to the provider's prompt cache. */
  cacheReadTokens: number;
  cacheWriteTokens: number;
  /** Estimated USD from `[prices]`; null when the model has no price ("no price", not free). */
  costUsd: number | null;
}

/** Budget use of one person on an agent (`userKey`), or of everyone on it (`userKey` null). */
export interface BudgetUse {
  agentId: string;
  userKey: string | null;
  /** null: no such limit. */
  limits: {
    tokensPerDay: number | null;
    tokensPerMonth: number | null;
    requestsPerMinute: number | null;
  };
  used: { tokensToday: number; tokensThisMonth: number; requestsLastMinute: number };
  /** What is left; null where there is no limit. */
  remaining: {
    tokensToday: number | null;
    tokensThisMonth: number | null;
    requestsLastMinute: number | null;
  };
  /** Out of tokens for today or this month: new turns are refused until the reset. */
  exhausted: boolean;
  /** When the day's and the month's counts start again (ISO 8601, UTC). */
  resets: { day: string; month: string };
}

/**
 * GET /admin/api/usage (and, with `daily` named `usage`, GET /api/v1/usage):
 * model use since a day, per agent, person, provider and model, with cost
 * estimates from `[prices]` and the budgets that apply now.
 */
export interface UsageSummary {
  /** First day counted (YYYY-MM-DD, UTC), or null for all time. */
  since: string | null;
  currency: "USD";
  /** Sum of the estimates of every priced row. */
  costUsd: number;
  /** `provider/model` of rows without a price (their cost is not in `costUsd`). */
  unpriced: string[];
  /** Per agent, person, provider and model over the whole period. */
  totals: UsageRow[];
  /** The same per day (newest first). */
  daily: (UsageRow & { day: string })[];
  /** Budgets that apply to agents and people, with what is used and left (empty without budgets). */
  budgets: BudgetUse[];
}

/** One sandbox in GET /admin/api/sandboxes. */
export interface SandboxRow {
  id: string;
  label: string;
  driver: string;
  state: "starting" | "running" | "stopped";
  busy: boolean;
  usage?: {
    memoryBytes?: number;
    diskBytes?: number;
    pids?: number;
    /** Virtual sandboxes: memory is the shared pool process's, for `sandboxes` sandboxes. */
    pool?: { id: string; sandboxes: number };
  };
  pid?: number;
  lastActiveAt: number;
  starts: number;
  lastExit?: { reason: string; at: number };
  key: { agentId: string; platform: string; userId: string };
}

export interface SandboxesView {
  driver: string;
  running: number;
  limits: { memoryMb: number; diskMb: number; cpus: number };
  /** Sandboxes recorded in all (`sandboxes` holds at most the 200 most recently active). */
  total: number;
  sandboxes: SandboxRow[];
}

/** One agent in GET /admin/api/agents. */
export interface AgentRow {
  id: string;
  name: string;
  description: string;
  source: "config" | "api" | "implicit";
  provider: string | null;
  model: string | null;
  tools: string[];
  skills: string[];
  policy: {
    default: ToolPolicyName;
    tools: Record<string, ToolPolicyName>;
    /** How long an approval waits for an answer. */
    requestTimeoutMs: number;
  };
  network: { allow: string[]; deny: string[] };
  conversations: number;
  /** Who may use the agent (docs/admin.md, Access control). */
  access: AccessView;
  persona: { name?: string; iconUrl?: string } | null;
}

/** One access list: people by user key, platform groups, email domains, channels. */
export interface AccessListView {
  users: string[];
  groups: string[];
  emailDomains: string[];
  channels: string[];
}

/** An agent's access rules; also the body of PUT /admin/api/agents/:id/access. */
export interface AccessView {
  allow: AccessListView;
  deny: AccessListView;
  directMessages: boolean;
  guests: boolean;
  externalChannels: string[];
}

/** One `[channels.*]` entry in GET /admin/api/channels. */
export interface ChannelRow {
  /** `platform:workspace:channel`. */
  channel: string;
  /** The agent bound to it; null: the platform's default. */
  agent: string | null;
  persona: { name?: string; iconUrl?: string } | null;
  model: string | null;
  systemPrompt: boolean;
  /** The only tools offered there; null: the agent's. */
  tools: string[] | null;
  ambient: {
    mode: "off" | "questions" | "keywords" | "all";
    keywords: string[];
    perMinute: number;
  };
}

/** One record in GET /admin/api/audit. */
export interface AuditRow {
  id: string;
  at: number;
  action: string;
  actor: string;
  agentId?: string;
  sandboxId?: string;
  details?: Record<string, unknown>;
}
