import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  AuditLog,
  type AuditRecord,
  REFUSAL_BURST,
  REFUSAL_INTERVAL_MS,
} from "../../src/audit/log.ts";
import { createStore, type Store } from "../../src/store/index.ts";
import { type ApiGateway, startApiGateway } from "../api/helpers.ts";

/**
 * The audit log is capped (100,000 records), so a refusal a stranger can
 * repeat at will (a wrong admin token, forged Mini App initData, a replayed
 * platform request) must not be able to push the genuine records out of it:
 * refusals are paced per action, and the ones left out are counted in the
 * next one recorded. A real SQLite store; the clock is the test's.
 */

let dir: string;
let store: Store;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "lobu-audit-refusals-"));
  store = await createStore({ driver: "sqlite", path: join(dir, "a.db") });
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("AuditLog.recordRefusal", () => {
  it("records a burst per action, then one per interval saying how many were left out", async () => {
    let now = Date.parse("2026-12-06T12:00:00Z");
    const audit = new AuditLog(store, { now: () => now });
    audit.record({ action: "secret.set", actor: "api:tok_1", details: { name: "GITHUB_TOKEN" } });
    for (let i = 0; i < 5000; i++) {
      audit.recordRefusal({ action: "admin.login_refused", actor: "unknown" });
    }
    // Another action has its own pace.
    audit.recordRefusal({ action: "platform.replay_refused", actor: "unknown" });
    await audit.flush();
    const first = await audit.recent({ limit: 10_000 });
    const refused = (records: AuditRecord[]) =>
      records.filter((r) => r.action === "admin.login_refused");
    expect(refused(first)).toHaveLength(REFUSAL_BURST);
    expect(first.filter((r) => r.action === "platform.replay_refused")).toHaveLength(1);
    expect(first.some((r) => r.action === "secret.set")).toBe(true);

    now += REFUSAL_INTERVAL_MS;
    audit.recordRefusal({ action: "admin.login_refused", actor: "unknown" });
    audit.recordRefusal({ action: "admin.login_refused", actor: "unknown" });
    await audit.flush();
    const later = refused(await audit.recent({ limit: 10_000 }));
    expect(later).toHaveLength(REFUSAL_BURST + 1);
    expect(later[0]!.details).toEqual({ suppressed: 5000 - REFUSAL_BURST });
    expect(later[0]!.at).toBe(now);
  });

  it("leaves ordinary records alone", async () => {
    const audit = new AuditLog(store, { now: () => 0 });
    for (let i = 0; i < 100; i++) audit.record({ action: "secret.set", actor: "api:tok_1" });
    await audit.flush();
    expect(await audit.recent({ limit: 1000 })).toHaveLength(100);
  });
});

describe("a flood of wrong admin logins", () => {
  let api: ApiGateway;
  beforeAll(async () => {
    api = await startApiGateway();
  });
  afterAll(async () => {
    await api.close();
  });

  it("leaves a handful of audit records, not one per attempt", async () => {
    const attempts = 300;
    for (let i = 0; i < attempts; i++) {
      const res = await fetch(`${api.url}/admin/api/login`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: api.url },
        body: JSON.stringify({ token: `lobu_wrong_${i}` }),
      });
      expect(res.status).toBe(401);
    }
    const res = await api.call(
      api.adminToken,
      "GET",
      "/api/v1/audit?action=admin.login_refused&limit=1000",
    );
    const { records } = (await res.json()) as { records: AuditRecord[] };
    // REFUSAL_BURST, and one more per REFUSAL_INTERVAL_MS the loop took: far fewer than attempts.
    expect(records.length).toBeGreaterThanOrEqual(REFUSAL_BURST);
    expect(records.length).toBeLessThan(attempts / 3);
  });
});
