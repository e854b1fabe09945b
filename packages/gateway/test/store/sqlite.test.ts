import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { createStore } from "../../src/store/index.ts";
import { Db } from "../../src/store/sqlite/db.ts";
import { SqliteStore } from "../../src/store/sqlite/store.ts";
import { sleep, storeContract } from "./contract.ts";

const dir = mkdtempSync(join(tmpdir(), "lobu-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const NODE = fileURLToPath(new URL("../../../../node_modules/.bin/node", import.meta.url));
const WRITER = fileURLToPath(new URL("./fixtures/sqlite-writer.ts", import.meta.url));

storeContract(
  "sqlite",
  async (scope) => createStore({ driver: "sqlite", path: join(dir, `${scope}.db`) }),
  {
    sharedAcrossInstances: false,
  },
);

describe("sqlite store durability", () => {
  it("keeps every acknowledged enqueue, lease and stream across close and reopen", async () => {
    const path = join(dir, "reopen.db");
    const first = await createStore({ driver: "sqlite", path });
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) ids.push((await first.queue.enqueue(`p${i % 5}`, `m${i}`)).id);
    const inFlight = await first.queue.claim("gw-old", 60_000);
    await first.kv.set("agent:default", "{}");
    await first.streams.append("history", "hello");
    await first.close();

    const second = await createStore({ driver: "sqlite", path });
    expect(await second.queue.depth()).toBe(50);
    expect((await second.queue.pending()).map((m) => m.id)).toEqual(ids);
    expect(await second.kv.get("agent:default")).toBe("{}");
    expect((await second.streams.range("history")).map((e) => e.data)).toEqual(["hello"]);
    // The old process's lease survived; a restarted sole gateway drops it.
    expect(
      await second.queue.claim("gw-new", 60_000, { partition: inFlight!.partition }),
    ).toBeNull();
    expect(await second.queue.releaseAllLeases(["gw-new"])).toBe(1);
    expect(
      await second.queue.claim("gw-new", 60_000, { partition: inFlight!.partition }),
    ).toMatchObject({ id: inFlight!.id, attempts: 2 });
    await second.close();
  });

  it("commits the writes still waiting for their group commit when it closes (shutdown)", async () => {
    const path = join(dir, "grouped-close.db");
    const first = await createStore({ driver: "sqlite", path });
    // Not awaited: closing right after, as a gateway does on SIGTERM once its callers returned.
    const writes = [
      first.streams.append("audit", "a1", { maxLen: 100 }),
      first.streams.append("usage", "u1", { maxLen: 100 }),
      first.queue.enqueue("p", "m1"),
    ];
    await first.close();
    await Promise.all(writes);
    const second = await createStore({ driver: "sqlite", path });
    expect((await second.streams.range("audit")).map((e) => e.data)).toEqual(["a1"]);
    expect((await second.streams.range("usage")).map((e) => e.data)).toEqual(["u1"]);
    expect(await second.queue.depth()).toBe(1);
    await second.close();
  });

  it("resolves durable writes made while the log's sync is in flight, and across a close", async () => {
    const path = join(dir, "grouped-sync.db");
    const db = new Db(path);
    db.raw.exec("CREATE TABLE t (v TEXT NOT NULL)");
    const insert = (v: string) => () => db.stmt("INSERT INTO t (v) VALUES (?)").run(v);
    // One group per event-loop turn: the second and third commit while the first one's sync runs.
    const first = db.grouped(insert("a"), { durable: true });
    await new Promise((r) => setImmediate(r));
    const second = db.grouped(insert("b"), { durable: true });
    await new Promise((r) => setImmediate(r));
    const third = db.grouped(insert("c"), { durable: true });
    const plain = db.grouped(insert("d"));
    await Promise.all([first, second]);
    await db.close();
    await Promise.all([third, plain]);
    const again = new Db(path);
    expect(
      again.raw
        .prepare("SELECT v FROM t ORDER BY v")
        .all()
        .map((r) => r.v),
    ).toEqual(["a", "b", "c", "d"]);
    await again.close();
  });

  it("touches none of its files once closed, its checkpoint thread's connection closed too", async () => {
    // Closed while the thread starts, and once it has checkpointed (its connection open).
    for (const ranFor of [0, 700]) {
      const own = mkdtempSync(join(dir, "closed-"));
      const db = new Db(join(own, "quick.db"));
      db.raw.exec("CREATE TABLE t (v TEXT NOT NULL)");
      await db.grouped(() => db.stmt("INSERT INTO t (v) VALUES ('x')").run(), { durable: true });
      await sleep(ranFor);
      await db.close();
      // The last connection to close removes the log and shared memory; nothing comes back.
      expect(readdirSync(own)).toEqual(["quick.db"]);
      await sleep(100);
      expect(readdirSync(own)).toEqual(["quick.db"]);
    }
  });

  it("resolves durable writes on a database without a log to sync (in memory)", async () => {
    const db = new Db(":memory:");
    db.raw.exec("CREATE TABLE t (v TEXT NOT NULL)");
    await db.grouped(() => db.stmt("INSERT INTO t (v) VALUES ('x')").run(), { durable: true });
    expect(db.raw.prepare("SELECT count(*) AS n FROM t").get()?.n).toBe(1);
    await db.close();
  });

  it("fails one write of a group commit alone, and commits the others", async () => {
    const db = new Db(join(dir, "grouped-failure.db"));
    db.raw.exec("CREATE TABLE t (v TEXT NOT NULL)");
    const insert = (v: string | null) => () => db.stmt("INSERT INTO t (v) VALUES (?)").run(v);
    const results = await Promise.allSettled([
      db.grouped(insert("a")),
      db.grouped(() => {
        insert("half")();
        insert(null)(); // NOT NULL: this write and its first row are rolled back
      }),
      db.grouped(insert("b"), { durable: true }),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(
      db
        .stmt("SELECT v FROM t")
        .all()
        .map((r) => r.v),
    ).toEqual(["a", "b"]);
    await db.close();
  });

  it("keeps every acknowledged enqueue when the owning process is SIGKILLed mid-write", async () => {
    const path = join(dir, "killed.db");
    const child = spawn(NODE, [WRITER, path], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    let buffered = "";
    const acknowledged: string[] = [];
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on("exit", (_code, signal) => resolve(signal)),
    );
    await new Promise<void>((resolve, reject) => {
      child.on("exit", (code) => reject(new Error(`writer exited early (${code}): ${stderr}`)));
      child.stdout.on("data", (d: Buffer) => {
        buffered += d.toString();
        const lines = buffered.split("\n");
        buffered = lines.pop() ?? "";
        acknowledged.push(...lines);
        if (acknowledged.length >= 300) resolve();
      });
    });
    child.kill("SIGKILL");
    expect(await exited).toBe("SIGKILL");
    // Lines that arrived after the kill signal were acknowledged too.
    acknowledged.push(...buffered.split("\n").slice(0, -1));

    const store = await createStore({ driver: "sqlite", path });
    const missing: string[] = [];
    for (const id of acknowledged) if (!(await store.queue.get(id))) missing.push(id);
    expect(missing).toEqual([]);
    expect(await store.queue.depth()).toBeGreaterThanOrEqual(acknowledged.length);
    const c = await store.queue.claim("w", 60_000);
    expect(c).not.toBeNull();
    expect(await store.queue.ack(c!)).toBe(true);
    await store.close();
  });

  it("records its schema version and refuses a database from a newer Lobu", async () => {
    const path = join(dir, "schema.db");
    await (await createStore({ driver: "sqlite", path })).close();
    const raw = new DatabaseSync(path);
    expect(raw.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get()).toEqual({
      value: "1",
    });
    raw.prepare("UPDATE meta SET value = '999' WHERE key = 'schema_version'").run();
    raw.close();
    await expect(createStore({ driver: "sqlite", path })).rejects.toThrow(/newer/);
  });

  it("uses WAL and sweeps expired rows", async () => {
    const path = join(dir, "sweep.db");
    const store = new SqliteStore(path);
    await store.kv.set("short", "v", { ttlMs: 10 });
    await store.kv.set("long", "v", { ttlMs: 60_000 });
    await store.queue.enqueue("p", "x", { dedupeKey: "d", dedupeTtlMs: 10 });
    await store.streams.append("s", "x", { ttlMs: 10 });
    await store.locks.acquire("l", "o", 10);
    await sleep(40);
    expect(store.sweep()).toBe(4);
    expect(store.sweep()).toBe(0);
    expect(await store.kv.get("long")).toBe("v");
    expect(await store.diagnose()).toEqual([]);
    await store.close();
    const raw = new DatabaseSync(path);
    expect(raw.prepare("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
    expect(raw.prepare("SELECT COUNT(*) AS n FROM kv").get()).toEqual({ n: 1 });
    raw.close();
  });
});
