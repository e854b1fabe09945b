import { accessData } from "../access/person-data.ts";
import type { AgentPackages } from "../agents/packages.ts";
import type { AuditLog } from "../audit/log.ts";
import { auditData } from "../audit/person-data.ts";
import { conversationsData } from "../conversations/person-data.ts";
import type { PersonDataKind } from "../domain/person-data.ts";
import type { McpService } from "../mcp/service.ts";
import type { Accounts } from "../people/accounts.ts";
import type { MemoryStore } from "../people/memory.ts";
import { PersonData } from "../people/person-data.ts";
import type { UserSettingsStore } from "../people/user-settings.ts";
import { ownSandboxIds, requestsData, sandboxesData } from "../runtime/person-data.ts";
import type { SandboxManager } from "../runtime/sandbox-manager.ts";
import type { ScheduleStore } from "../schedules/records.ts";
import { secretsData } from "../secrets/person-data.ts";
import type { PlaceholderRegistry } from "../secrets/placeholders.ts";
import type { SecretStore } from "../secrets/store.ts";
import type { Store } from "../store/port.ts";
import { budgetsData } from "../usage/person-data.ts";
import { platformStateData } from "./adapter-context.ts";

export interface PersonDataDeps {
  store: Store;
  secrets: SecretStore;
  placeholders: PlaceholderRegistry;
  userSettings: UserSettingsStore;
  audit: Pick<AuditLog, "record">;
  sandboxes: Pick<SandboxManager, "destroy" | "volumeDir" | "record">;
  packages: Pick<AgentPackages, "personData">;
  schedules: Pick<ScheduleStore, "personData">;
  memory: Pick<MemoryStore, "personData">;
  mcp: Pick<McpService, "personData">;
  accounts: Pick<Accounts, "personData">;
}

/**
 * Every kind of per-person data, one line each (docs/architecture.md, "Person
 * data"). Erasure runs them in this order: audit and sandboxes find the
 * person's sandboxes by their records and conversations, so they come before
 * the kinds that remove those; links come last.
 */
export function personDataKinds(d: PersonDataDeps): PersonDataKind[] {
  return [
    auditData({ store: d.store, ownSandboxes: (p) => ownSandboxIds(d.store, p) }),
    budgetsData(d.store.kv),
    d.userSettings.personData(),
    // MCP before secrets: its erasure revokes the tokens at each server while it still has them.
    d.mcp.personData(),
    secretsData(d.secrets, d.placeholders),
    accessData(d.store.kv),
    requestsData(d.store),
    sandboxesData({ store: d.store, sandboxes: d.sandboxes, placeholders: d.placeholders }),
    conversationsData(d.store),
    d.packages.personData(),
    platformStateData(d.store.kv),
    d.schedules.personData(),
    d.memory.personData(),
    // Last: the kinds above erase what is kept under the identity's own key first.
    d.accounts.personData(),
  ];
}

export function buildPersonData(d: PersonDataDeps): PersonData {
  return new PersonData(personDataKinds(d), (entry) => d.audit.record(entry));
}
