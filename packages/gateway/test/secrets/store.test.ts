import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { forgetSecret, redactSecrets, registeredSecretCount } from "@lobu/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { maskSecret, type SecretRef, SecretStore, secretKey } from "../../src/secrets/store.ts";
import { createStore } from "../../src/store/index.ts";
import type { Store } from "../../src/store/port.ts";

let dir: string;
let store: Store;
let key: Buffer;
let secrets: SecretStore;
let clock: number;

const inst = (name: string): SecretRef => ({ name, scope: { kind: "installation" } });
const agent = (agentId: string, name: string): SecretRef => ({
  name,
  scope: { kind: "agent", agentId },
});
const user = (agentId: string, userKey: string, name: string): SecretRef => ({
  name,
  scope: { kind: "user", agentId, userKey },
});

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "lobu-secrets-"));
  store = await createStore({ driver: "sqlite", path: join(dir, "lobu.db") });
  key = randomBytes(32);
  clock = 1_000;
  secrets = new SecretStore(store.kv, key, { now: () => clock });
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("SecretStore", () => {
  it("stores values encrypted and reads them back", async () => {
    const value = "sk-ant-api03-verysecretvalue-a1b2";
    const meta = await secrets.set(agent("helper", "provider.anthropic"), value);
    expect(meta).toEqual({
      name: "provider.anthropic",
      scope: { kind: "agent", agentId: "helper" },
      version: 1,
      createdAt: 1_000,
      updatedAt: 1_000,
      hint: "sk-…a1b2",
    });
    const raw = await store.kv.get(secretKey(agent("helper", "provider.anthropic")));
    expect(raw).not.toBeNull();
    expect(raw).not.toContain(value);
    expect(raw).not.toContain(Buffer.from(value).toString("base64"));
    expect(await secrets.get(agent("helper", "provider.anthropic"))).toBe(value);
    expect(await secrets.get(agent("other", "provider.anthropic"))).toBeNull();
  });

  it("uses a fresh IV per write", async () => {
    await secrets.set(inst("a"), "same-value-123456");
    const one = await store.kv.get(secretKey(inst("a")));
    await secrets.set(inst("a"), "same-value-123456");
    const two = await store.kv.get(secretKey(inst("a")));
    expect(JSON.parse(one!).data).not.toBe(JSON.parse(two!).data);
  });

  it("lists metadata only, per scope", async () => {
    await secrets.set(inst("github"), "ghp_installationtoken0001");
    await secrets.set(agent("helper", "github"), "ghp_agenttoken00000000002");
    await secrets.set(user("helper", "slack:T1:U1", "github"), "ghp_usertoken000000000003");
    await secrets.set(user("helper", "slack:T1:U12", "github"), "ghp_usertoken000000000004");
    const listed = await secrets.list({ kind: "user", agentId: "helper", userKey: "slack:T1:U1" });
    expect(listed).toHaveLength(1);
    expect(listed[0]!.hint).toBe("ghp…0003");
    const text = JSON.stringify(await secrets.list());
    for (const v of ["installationtoken", "agenttoken", "usertoken"]) expect(text).not.toContain(v);
    expect(text).not.toContain('"data"');
    expect(
      (await secrets.list({ kind: "agent", agentId: "helper" })).map((m) => m.scope.kind),
    ).toEqual(["agent"]);
    expect(await secrets.list({ kind: "installation" })).toHaveLength(1);
    expect(await secrets.list()).toHaveLength(4);
  });

  it("masks short values harder", () => {
    expect(maskSecret("abc")).toBe("…");
    expect(maskSecret("abcdefghij")).toBe("…ij");
    expect(maskSecret("sk-0123456789abcdef")).toBe("sk-…cdef");
  });

  it("rotate replaces the value, bumps the version and keeps createdAt", async () => {
    await secrets.set(inst("k"), "first-value-000001");
    clock = 5_000;
    const meta = await secrets.rotate(inst("k"), "second-value-00002");
    expect(meta).toMatchObject({
      version: 2,
      createdAt: 1_000,
      updatedAt: 5_000,
      hint: "sec…0002",
    });
    expect(await secrets.get(inst("k"))).toBe("second-value-00002");
    await expect(secrets.rotate(inst("missing"), "x-value-000000")).rejects.toMatchObject({
      code: "secret_not_found",
      status: 404,
    });
  });

  it("deletes", async () => {
    await secrets.set(inst("k"), "value-to-delete-01");
    expect(await secrets.delete(inst("k"))).toBe(true);
    expect(await secrets.get(inst("k"))).toBeNull();
    expect(await secrets.delete(inst("k"))).toBe(false);
  });

  it("resolves the most specific secret: user > agent > installation", async () => {
    const ctx = { agentId: "helper", userKey: "slack:T1:U1" };
    expect(await secrets.resolve("github", ctx)).toBeNull();
    await secrets.set(inst("github"), "installation-value-1");
    expect((await secrets.resolve("github", ctx))?.value).toBe("installation-value-1");
    await secrets.set(agent("helper", "github"), "agent-value-0000002");
    expect((await secrets.resolve("github", ctx))?.value).toBe("agent-value-0000002");
    await secrets.set(user("helper", "slack:T1:U2", "github"), "someone-else-value-3");
    expect((await secrets.resolve("github", ctx))?.value).toBe("agent-value-0000002");
    await secrets.set(user("helper", "slack:T1:U1", "github"), "my-own-value-000004");
    const mine = await secrets.resolve("github", ctx);
    expect(mine?.value).toBe("my-own-value-000004");
    expect(mine?.ref).toEqual(user("helper", "slack:T1:U1", "github"));
    expect((await secrets.resolve("github", { agentId: "other" }))?.value).toBe(
      "installation-value-1",
    );
  });

  it("a ciphertext copied under another scope or name does not decrypt", async () => {
    await secrets.set(user("helper", "slack:T1:U1", "github"), "victim-token-000001");
    const raw = (await store.kv.get(secretKey(user("helper", "slack:T1:U1", "github"))))!;
    const attacks: SecretRef[] = [
      user("helper", "slack:T1:U2", "github"),
      user("evil", "slack:T1:U1", "github"),
      agent("helper", "github"),
      inst("github"),
      user("helper", "slack:T1:U1", "other"),
    ];
    for (const target of attacks) {
      // Even with the record's metadata rewritten to match its new home.
      const moved = JSON.stringify({ ...JSON.parse(raw), scope: target.scope, name: target.name });
      await store.kv.set(secretKey(target), moved);
      await expect(secrets.get(target)).rejects.toMatchObject({ code: "secret_undecryptable" });
    }
  });

  it("detects tampering", async () => {
    await secrets.set(inst("k"), "tamper-target-00001");
    const rec = JSON.parse((await store.kv.get(secretKey(inst("k"))))!);
    const parts = rec.data.split(".");
    const ct = Buffer.from(parts[2], "base64url");
    ct[0] = ct[0]! ^ 1;
    parts[2] = ct.toString("base64url");
    await store.kv.set(secretKey(inst("k")), JSON.stringify({ ...rec, data: parts.join(".") }));
    await expect(secrets.get(inst("k"))).rejects.toMatchObject({ code: "secret_undecryptable" });
  });

  it("refuses another master key at startup", async () => {
    await secrets.verifyMasterKey();
    await secrets.verifyMasterKey();
    const wrong = new SecretStore(store.kv, randomBytes(32));
    await expect(wrong.verifyMasterKey()).rejects.toMatchObject({ code: "master_key_mismatch" });
  });

  it("redacts a secret's stored value only: a replaced or deleted value leaves the registry", async () => {
    const before = registeredSecretCount();
    for (let i = 0; i < 20; i++) {
      await secrets.set(inst("rotating"), `rotating-value-${i}-${randomBytes(4).toString("hex")}`);
      await secrets.get(inst("rotating"));
    }
    const current = `rotating-value-last-${randomBytes(4).toString("hex")}`;
    await secrets.set(inst("rotating"), current);
    expect(registeredSecretCount()).toBeLessThanOrEqual(before + 1);
    expect(redactSecrets(`token=${current}`)).toBe("token=[REDACTED]");
    await secrets.delete(inst("rotating"));
    expect(redactSecrets(`token=${current}`)).toBe(`token=${current}`);
  });

  it("registers every value it stores or decrypts for log redaction", async () => {
    const value = `redact-me-${randomBytes(8).toString("hex")}`;
    await secrets.set(inst("fresh"), value);
    expect(redactSecrets(`token=${value}`)).toBe("token=[REDACTED]");
    // As if another gateway had written it: this process learns it only by decrypting.
    forgetSecret(value);
    expect(redactSecrets(`token=${value}`)).toBe(`token=${value}`);
    expect(await new SecretStore(store.kv, key).get(inst("fresh"))).toBe(value);
    expect(redactSecrets(`token=${value}`)).toBe("token=[REDACTED]");
    forgetSecret(value);
    expect((await secrets.resolve("fresh", { agentId: "helper" }))?.value).toBe(value);
    expect(redactSecrets(`token=${value}`)).toBe("token=[REDACTED]");
  });

  it("validates names and scopes", async () => {
    await expect(secrets.set(inst("bad name"), "v-0000000")).rejects.toMatchObject({
      code: "secret_invalid",
    });
    await expect(secrets.set(inst("a:b"), "v-0000000")).rejects.toMatchObject({
      code: "secret_invalid",
    });
    await expect(secrets.set(agent("Bad Agent", "x"), "v-0000000")).rejects.toMatchObject({
      code: "secret_invalid",
    });
    await expect(secrets.set(user("helper", "", "x"), "v-0000000")).rejects.toMatchObject({
      code: "secret_invalid",
    });
    await expect(secrets.set(inst("x"), "")).rejects.toMatchObject({ code: "secret_invalid" });
  });

  it("re-encrypts everything under a new master key, resumably", async () => {
    await secrets.set(inst("a"), "value-a-000000001");
    await secrets.set(agent("helper", "b"), "value-b-000000002");
    await secrets.set(user("helper", "telegram::42", "c"), "value-c-000000003");
    await secrets.verifyMasterKey();
    const newKey = randomBytes(32);
    expect(await secrets.reencryptAll(key, newKey)).toEqual({ reencrypted: 3, alreadyCurrent: 0 });
    // The same instance now uses the new key.
    expect(await secrets.get(inst("a"))).toBe("value-a-000000001");
    const fresh = new SecretStore(store.kv, newKey);
    await fresh.verifyMasterKey();
    expect(await fresh.get(user("helper", "telegram::42", "c"))).toBe("value-c-000000003");
    await expect(new SecretStore(store.kv, key).get(inst("a"))).rejects.toMatchObject({
      code: "secret_undecryptable",
    });
    await expect(new SecretStore(store.kv, key).verifyMasterKey()).rejects.toMatchObject({
      code: "master_key_mismatch",
    });
    // Running it again (a resumed rotation) changes nothing.
    expect(await fresh.reencryptAll(key, newKey)).toEqual({ reencrypted: 0, alreadyCurrent: 3 });
  });
});
