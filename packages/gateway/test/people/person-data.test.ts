import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type PersonDataKind, parsePersonKey } from "../../src/domain/person-data.ts";
import { PersonData, personDigest } from "../../src/people/person-data.ts";
import { createStore, type Store } from "../../src/store/index.ts";
import { platformStateData } from "../../src/wiring/adapter-context.ts";

/**
 * The person-data registry: every kind is checked for a running turn before
 * anything is erased, a failing kind does not stop the others, and the
 * erasure's audit record names the person only by a digest.
 */

let dir: string;
let store: Store;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "lobu-person-data-"));
  store = await createStore({ driver: "sqlite", path: join(dir, "lobu.db") });
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const alice = parsePersonKey("slack:T1:U1");

function kind(
  name: string,
  over: Partial<PersonDataKind> = {},
): PersonDataKind & { erased: number } {
  const k = {
    name,
    erased: 0,
    export: async () => ({ name }),
    erase: async () => {
      k.erased++;
      return { things: 1 };
    },
    ...over,
  };
  return k;
}

describe("user keys", () => {
  it("reads platform, workspace and user, and refuses paths, control characters and the shared user", () => {
    expect(parsePersonKey("api:acme:al:ice")).toMatchObject({
      platform: "api",
      workspace: "acme",
      userId: "al:ice",
    });
    expect(parsePersonKey("telegram::123")).toMatchObject({ workspace: "", userId: "123" });
    for (const bad of [
      "",
      "slack",
      "slack:T1",
      "slack:T1:",
      "../x:y:z",
      "api::..",
      "api::.",
      "api::*",
      "api::a/b",
      "api::a\\b",
      "api::a\nb",
      "api::a\0b",
      "Slack:T1:U1",
      `api::${"x".repeat(300)}`,
    ])
      expect(() => parsePersonKey(bad), JSON.stringify(bad)).toThrow(/is not a user key/);
  });
});

describe("PersonData", () => {
  it("refuses two kinds of one name", () => {
    expect(() => new PersonData([kind("a"), kind("a")], () => {})).toThrow(/registered twice/);
  });

  it("exports every kind under its name", async () => {
    const bundle = await new PersonData([kind("a"), kind("b")], () => {}).export(alice);
    expect(bundle).toMatchObject({
      format: "lobu-person-export/v1",
      userKey: "slack:T1:U1",
      data: { a: { name: "a" }, b: { name: "b" } },
    });
  });

  it("erases nothing while any kind is busy", async () => {
    const a = kind("a");
    const b = kind("b", { busy: async () => "message m1 is queued or running" });
    const audit: unknown[] = [];
    await expect(
      new PersonData([a, b], (e) => audit.push(e)).erase(alice, "api:tok"),
    ).rejects.toMatchObject({
      code: "person_busy",
    });
    expect(a.erased).toBe(0);
    expect(audit).toEqual([]);
  });

  it("goes on past a failing kind, fails naming it, and audits by digest only", async () => {
    const a = kind("a", {
      erase: async () => {
        throw new Error("disk gone");
      },
    });
    const b = kind("b");
    const audit: { action: string; actor: string; details: Record<string, unknown> }[] = [];
    const people = new PersonData([a, b], (e) => audit.push(e));
    await expect(people.erase(alice, alice.userKey)).rejects.toThrow(/failed for a \(disk gone\)/);
    expect(b.erased).toBe(1);
    expect(audit[0]).toMatchObject({
      action: "person.erase_failed",
      actor: personDigest(alice.userKey),
    });
    expect(JSON.stringify(audit)).not.toContain("slack:T1:U1");
    expect(personDigest(alice.userKey)).not.toBe(personDigest("slack:T1:U12"));
  });
});

describe("platform state", () => {
  it("erases the markers keyed by the person, not by someone whose id starts the same", async () => {
    const keys = [
      "platform:slack:thread:T1:C1:1.2:U1",
      "platform:slack:thread:T1:C1:1.2:U12",
      "platform:slack:thread:T2:C1:1.2:U1",
      "platform:slack:install:T1",
    ];
    for (const k of keys) await store.kv.set(k, "1");
    expect(await platformStateData(store.kv).erase(alice)).toEqual({ markers: 1 });
    expect((await store.kv.list("platform:")).map((e) => e.key).sort()).toEqual(
      keys.slice(1).sort(),
    );
    // Without a workspace a trailing id could be anything's: nothing is touched.
    expect(await platformStateData(store.kv).erase(parsePersonKey("telegram::U1"))).toEqual({
      markers: 0,
    });
  });
});
