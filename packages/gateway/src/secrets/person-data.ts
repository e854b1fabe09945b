import type { PersonDataKind } from "../domain/person-data.ts";
import type { PlaceholderRegistry } from "./placeholders.ts";
import type { SecretStore } from "./store.ts";

/**
 * A person's own secrets (user scope, every agent; and the gateway-only `person`
 * scope, e.g. MCP tokens) and the placeholders that
 * stand for them or for their turns. The export names them, never a value or
 * its masked hint.
 */
export function secretsData(
  secrets: Pick<SecretStore, "ofPerson" | "deleteKeys">,
  placeholders: Pick<PlaceholderRegistry, "revokePerson">,
): PersonDataKind {
  return {
    name: "secrets",
    export: async (p) =>
      (await secrets.ofPerson(p.userKey)).map(({ key, meta }) =>
        meta && meta.scope.kind !== "installation"
          ? {
              name: meta.name,
              ...(meta.scope.kind === "user" ? { agentId: meta.scope.agentId } : {}),
              version: meta.version,
              createdAt: meta.createdAt,
              updatedAt: meta.updatedAt,
            }
          : { unreadable: key },
      ),
    erase: async (p) => {
      // Placeholders first: from then on nothing swaps in a value about to go.
      const revoked = await placeholders.revokePerson(p.userKey);
      const stored = await secrets.ofPerson(p.userKey);
      return {
        placeholders: revoked,
        secrets: await secrets.deleteKeys(stored.map((s) => s.key)),
      };
    },
  };
}
