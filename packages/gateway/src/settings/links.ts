import type { Origin } from "../platforms/adapter.ts";
import type { GatewayServices } from "../services.ts";

/**
 * A link that opens the settings page for the person behind `origin`, optionally
 * prefilled with a change to approve. (Claim codes: see the settings issue.)
 */
export async function createSettingsLink(
  services: Pick<GatewayServices, "publicUrl">,
  _origin: Origin,
  _opts: { agentId?: string; prefill?: Record<string, string>; requestId?: string } = {},
): Promise<string> {
  return `${services.publicUrl}/settings`;
}
