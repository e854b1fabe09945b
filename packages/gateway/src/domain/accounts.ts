/**
 * The account a person's identity belongs to: the user key that per-person
 * data (settings, own secrets, memory, MCP connections) is kept under. An
 * identity that is linked to no other is its own account. Stores take this
 * as a function so that layers below `people/` (secrets) can resolve it too.
 */
export type AccountOf = (userKey: string) => Promise<string>;

/** No linking: every identity is its own account (tests, tools). */
export const ownAccount: AccountOf = async (userKey) => userKey;
