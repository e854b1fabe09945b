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
    | { type: "approval_request"; tool: string; summary: string }
    | { type: "question"; prompt: string };
  answer?: { choice?: string; by?: string };
}

/** A person with conversations, as the admin UI lists them. */
export interface UserRow {
  userKey: string;
  platform: string;
  name?: string;
  agents: string[];
  conversations: number;
  lastMessageAt: number;
  inputTokens: number;
  outputTokens: number;
  requests: number;
}
