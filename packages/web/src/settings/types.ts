/** The gateway's settings view (see packages/gateway/src/settings/view.ts). */

export type ToolPolicy = "allow" | "ask" | "deny";

export interface SettingsView {
  user: { userKey: string; name?: string; platform: string };
  agent: { id: string; name: string; description: string };
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
      userKey: { hint: string; updatedAt: number } | null;
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
    installed: string[];
    fromAgent: string[];
  };
  mcp: { servers: { id: string; description: string }[]; connected: string[] };
  packages: { installed: string[]; fromSkills: string[] };
  domains: { user: string[]; agent: string[]; installation: string[]; denied: string[] };
  tools: {
    name: string;
    agentPolicy: ToolPolicy;
    userChoice?: ToolPolicy;
    effective: ToolPolicy;
  }[];
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
