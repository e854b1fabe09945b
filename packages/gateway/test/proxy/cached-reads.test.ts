import { once } from "node:events";
import tls from "node:tls";
import { createLogger } from "@lobu/core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { UserSettingsStore } from "../../src/people/user-settings.ts";
import { PlaceholderRegistry } from "../../src/secrets/placeholders.ts";
import { type SecretRef, SecretStore, secretKey } from "../../src/secrets/store.ts";
import { ReadMemo } from "../../src/util/read-memo.ts";
import { connect, createWorld, httpsViaProxy, TRUSTING, viaProxy, type World } from "./fixture.ts";

/**
 * The proxy memoizes decoded bindings and decrypted secrets (util/read-memo.ts)
 * so a request does not parse and decrypt again what it read last time. These
 * tests make sure the memo is never a cache of decisions: a revoked placeholder,
 * a deleted or rotated secret, or a narrowed binding takes effect on the very
 * next request, also when the change is made by another gateway (another
 * registry and store over the same storage, with memos of their own).
 */

let w: World;
/** Another gateway on the same storage. */
let otherPlaceholders: PlaceholderRegistry;
let otherSecrets: SecretStore;
const ref: SecretRef = { name: "cached", scope: { kind: "agent", agentId: "helper" } };
const FIRST = "ghp_cachedFirstValue0123456789abcdef";
const SECOND = "ghp_cachedSecondValue0123456789abcde";

beforeAll(async () => {
  w = await createWorld();
  otherPlaceholders = new PlaceholderRegistry(w.store.kv);
  // Same master key: the other gateway of one installation.
  otherSecrets = new SecretStore(w.store.kv, w.masterKey);
});
afterAll(() => w.close());
beforeEach(() => {
  w.audit.length = 0;
  w.http.received.length = 0;
  w.https.received.length = 0;
});

async function plainSwap(placeholder: string): Promise<string | undefined> {
  w.http.received.length = 0;
  const res = await viaProxy(w.proxyPort, `http://api.allowed.test:${w.http.port}/x`, {
    headers: { authorization: `Bearer ${placeholder}` },
  });
  expect(res.status).toBe(200);
  return w.http.received[0]!.headers.authorization;
}

async function tlsSwap(placeholder: string): Promise<string | undefined> {
  w.https.received.length = 0;
  const res = await httpsViaProxy(w.proxyPort, "api.allowed.test", w.https.port, {
    ca: w.ca.certPem,
    headers: { authorization: `Bearer ${placeholder}` },
  });
  expect(res.status).toBe(200);
  return w.https.received[0]!.headers.authorization;
}

describe("memoized reads on the proxy's hot path", () => {
  it("a placeholder revoked by another gateway stops being swapped on the next request", async () => {
    await w.secrets.set(ref, FIRST);
    const p = await w.placeholders.issue({
      sandboxId: TRUSTING,
      secret: ref,
      hosts: ["api.allowed.test"],
    });
    for (let i = 0; i < 3; i++) expect(await plainSwap(p)).toBe(`Bearer ${FIRST}`);
    expect(await tlsSwap(p)).toBe(`Bearer ${FIRST}`);
    expect(await otherPlaceholders.revoke(p)).toBe(true);
    expect(await plainSwap(p)).toBe(`Bearer ${p}`);
    expect(await w.placeholders.lookup(p)).toBeNull();
    expect(w.audit.at(-1)).toMatchObject({
      unswapped: 1,
      notes: ["unknown or revoked placeholder"],
    });
  });

  it("a rotated secret is sent with its new value at once, a deleted one not at all", async () => {
    await w.secrets.set(ref, FIRST);
    const p = await w.placeholders.issue({
      sandboxId: TRUSTING,
      secret: ref,
      hosts: ["api.allowed.test"],
    });
    expect(await tlsSwap(p)).toBe(`Bearer ${FIRST}`);
    await otherSecrets.rotate(ref, SECOND);
    expect(await tlsSwap(p)).toBe(`Bearer ${SECOND}`);
    expect(await plainSwap(p)).toBe(`Bearer ${SECOND}`);
    expect(await otherSecrets.delete(ref)).toBe(true);
    expect(await plainSwap(p)).toBe(`Bearer ${p}`);
    expect(await w.secrets.get(ref)).toBeNull();
    await w.placeholders.revoke(p);
  });

  it("a binding narrowed by another gateway applies to the next request", async () => {
    await w.secrets.set(ref, FIRST);
    const p = await w.placeholders.issue({
      sandboxId: TRUSTING,
      secret: ref,
      hosts: ["api.allowed.test"],
    });
    expect(await plainSwap(p)).toBe(`Bearer ${FIRST}`);
    // Same placeholder, now bound elsewhere only.
    expect(
      await otherPlaceholders.issue({
        sandboxId: TRUSTING,
        secret: ref,
        hosts: ["elsewhere.test"],
      }),
    ).toBe(p);
    expect(await plainSwap(p)).toBe(`Bearer ${p}`);
    // And only headers: a URL swap is refused at once after re-issuing with locations narrowed.
    await otherPlaceholders.issue({
      sandboxId: TRUSTING,
      secret: ref,
      hosts: ["api.allowed.test"],
      locations: ["body"],
    });
    expect(await plainSwap(p)).toBe(`Bearer ${p}`);
    await w.placeholders.revoke(p);
  });
});

describe("TLS session resumption in intercepted tunnels", () => {
  it("a client offering its ticket resumes the session on the next tunnel to the host", async () => {
    await w.secrets.set(ref, FIRST);
    const p = await w.placeholders.issue({
      sandboxId: TRUSTING,
      secret: ref,
      hosts: ["api.allowed.test"],
    });
    let session: Buffer | undefined;
    const reused: boolean[] = [];
    for (let i = 0; i < 2; i++) {
      const tunnel = await connect(w.proxyPort, `api.allowed.test:${w.https.port}`);
      expect(tunnel.status).toBe(200);
      const s = tls.connect({
        socket: tunnel.socket,
        servername: "api.allowed.test",
        ca: w.ca.certPem,
        ...(session ? { session } : {}),
      });
      s.on("session", (t: Buffer) => {
        session = t;
      });
      await once(s, "secureConnect");
      reused.push(s.isSessionReused());
      // TLS 1.3 tickets arrive after the handshake: ask for something so one is sent.
      s.write(
        `GET / HTTP/1.1\r\nHost: api.allowed.test\r\nAuthorization: Bearer ${p}\r\nConnection: close\r\n\r\n`,
      );
      s.resume();
      await once(s, "close");
    }
    expect(reused).toEqual([false, true]);
    await w.placeholders.revoke(p);
  });
});

describe("SecretStore decrypt memo", () => {
  it("never answers a ciphertext copied under another name from the memo of the original", async () => {
    const victim: SecretRef = { name: "victim", scope: { kind: "agent", agentId: "a" } };
    const thief: SecretRef = { name: "thief", scope: { kind: "agent", agentId: "b" } };
    await w.secrets.set(victim, FIRST);
    await w.secrets.set(thief, "thief-own-value-123456");
    expect(await w.secrets.get(victim)).toBe(FIRST);
    // Someone with write access to the storage copies the sealed record over.
    const raw = (await w.store.kv.get(secretKey(victim)))!;
    await w.store.kv.set(secretKey(thief), raw);
    await expect(w.secrets.get(thief)).rejects.toMatchObject({ code: "secret_undecryptable" });
  });

  it("reads a value written by another store instance, and forgets a deleted one", async () => {
    const r: SecretRef = { name: "shared", scope: { kind: "installation" } };
    await w.secrets.set(r, FIRST);
    expect(await otherSecrets.get(r)).toBe(FIRST);
    await w.secrets.set(r, SECOND);
    expect(await otherSecrets.get(r)).toBe(SECOND);
    await w.secrets.delete(r);
    expect(await otherSecrets.get(r)).toBeNull();
  });
});

describe("UserSettingsStore parse memo (a person's granted domains)", () => {
  it("a domain removed by another gateway is gone from the next read; shared reads are frozen", async () => {
    const log = createLogger("test", { level: "silent" });
    const here = new UserSettingsStore(w.store.kv, log);
    const there = new UserSettingsStore(w.store.kv, log);
    await there.update("helper", "slack:T1:U1", (s) => ({ ...s, domains: ["api.granted.test"] }));
    expect((await here.get("helper", "slack:T1:U1")).domains).toEqual(["api.granted.test"]);
    const again = await here.get("helper", "slack:T1:U1");
    expect(() => (again.domains as string[]).push("evil.test")).toThrow(TypeError);
    await there.update("helper", "slack:T1:U1", (s) => ({ ...s, domains: [] }));
    expect((await here.get("helper", "slack:T1:U1")).domains).toEqual([]);
    await w.store.kv.del("usettings:helper:slack:T1:U1");
    expect((await here.get("helper", "slack:T1:U1")).domains).toEqual([]);
  });
});

describe("ReadMemo", () => {
  it("decodes again when the text or the key differs, and stays bounded", () => {
    const memo = new ReadMemo<string>(2);
    let calls = 0;
    const decode = (raw: string) => {
      calls++;
      return raw.toUpperCase();
    };
    expect(memo.get("k", "a", decode)).toBe("A");
    expect(memo.get("k", "a", decode)).toBe("A");
    expect(calls).toBe(1);
    expect(memo.get("other", "a", decode)).toBe("A");
    expect(memo.get("k", "b", decode)).toBe("B");
    expect(calls).toBe(3);
    expect(memo.size).toBe(2);
  });

  it("does not remember a decode that threw", () => {
    const memo = new ReadMemo<string>();
    let fail = true;
    const decode = (raw: string) => {
      if (fail) throw new Error("bad");
      return raw;
    };
    expect(() => memo.get("k", "x", decode)).toThrow("bad");
    fail = false;
    expect(memo.get("k", "x", decode)).toBe("x");
  });
});
