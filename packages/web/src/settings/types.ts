/** The gateway's settings and request views, shared with it through @lobu/core. */
export type {
  CapabilityKind,
  DecisionChoice,
  PackageStatusView,
  RequestView,
  SettingsView,
  ToolPolicyName as ToolPolicy,
} from "@lobu/core/views";
