/**
 * Wire shapes the browser UIs (packages/web) read from the gateway's settings
 * and admin APIs. Types only, with no imports, so the web bundle can share them.
 */

export type ToolPolicyName = "allow" | "ask" | "deny";

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
    providers: {
      id: string;
      type: string;
      defaultModel: string;
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
    }[];
    /** Installed by the person. */
    installed: string[];
    /** Installed for everyone by the agent definition. */
    fromAgent: string[];
  };
  mcp: { servers: { id: string; description: string }[]; connected: string[] };
  packages: { installed: string[]; fromSkills: string[] };
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

export type CapabilityKind = "skill" | "domain" | "package" | "mcp" | "secret";

export interface RequestView {
  requestId: string;
  agentId: string;
  status: "pending" | "answered" | "expired";
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

/** GET /admin/api/usage: per person and provider, and per day, agent, person and provider. */
export interface UsageSummary {
  /** First day counted (YYYY-MM-DD, UTC), or null for all time. */
  since: string | null;
  totals: (UsageCounts & { userKey: string; provider: string })[];
  daily: (UsageCounts & { day: string; agentId: string; userKey: string; provider: string })[];
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
