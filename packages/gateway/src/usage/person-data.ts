import type { PersonDataKind } from "../domain/person-data.ts";
import type { KeyValue } from "../store/port.ts";
import { scanKeys } from "../store/scan.ts";

/**
 * The person's budget counters (`budget:…:<agent>:u:<user key>`, living a
 * period and a day). Erased, not anonymized: they only exist to refuse the
 * person's next call, and the agent's shared counters keep counting. Not
 * exported: the usage records (the audit kind) say the same.
 */
export function budgetsData(kv: Pick<KeyValue, "list" | "del">): PersonDataKind {
  return {
    name: "budgets",
    export: async () => undefined,
    erase: async (p) => {
      let counters = 0;
      const suffix = `:u:${p.userKey}`;
      for await (const { key } of scanKeys(kv, "budget:"))
        if (key.endsWith(suffix) && (await kv.del(key))) counters++;
      return { budgetCounters: counters };
    },
  };
}
