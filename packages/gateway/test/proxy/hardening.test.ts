import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { SecretRef } from "../../src/secrets/store.ts";
import { connect, createWorld, TRUSTING, viaProxy, type World } from "./fixture.ts";

/**
 * What the end-to-end attack suite (test/security) found, pinned at unit level:
 * relay-only provider keys, redaction of values a bound host stored earlier,
 * audit notes saying why a placeholder was not swapped, and refusals a client
 * shows even when it hides a failed CONNECT's body.
 */

let w: World;
const PROVIDER = "sk-provider-real-key-0000000000000001";
const NOTE = "note-secret-real-value-000000000000002";
const provider: SecretRef = { name: "provider.anthropic", scope: { kind: "installation" } };
const note: SecretRef = { name: "notes", scope: { kind: "agent", agentId: "helper" } };
let relayPlaceholder: string;
let notePlaceholder: string;

beforeAll(async () => {
  w = await createWorld();
  await w.secrets.set(provider, PROVIDER);
  await w.secrets.set(note, NOTE);
  relayPlaceholder = await w.placeholders.issue({
    sandboxId: TRUSTING,
    secret: provider,
    hosts: ["api.allowed.test"],
    locations: ["header"],
    purpose: "relay",
  });
  notePlaceholder = await w.placeholders.issue({
    sandboxId: TRUSTING,
    secret: note,
    hosts: ["api.allowed.test"],
    locations: ["header", "body"],
  });
});
afterAll(() => w.close());
beforeEach(() => {
  w.audit.length = 0;
  w.http.received.length = 0;
  w.http.routes.length = 0;
});

describe("egress hardening", () => {
  it("never swaps a relay-only placeholder, even on its bound host, and says why", async () => {
    await viaProxy(w.proxyPort, `http://api.allowed.test:${w.http.port}/v1/messages`, {
      headers: { "x-api-key": relayPlaceholder },
    });
    expect(w.http.received[0]!.headers["x-api-key"]).toBe(relayPlaceholder);
    expect(w.audit).toEqual([
      expect.objectContaining({
        decision: "allowed",
        unswapped: 1,
        notes: ["secret provider.anthropic is only usable through the LLM relay"],
      }),
    ]);
  });

  it("relay and proxy placeholders of one secret are distinct, and revokeSandbox revokes both", async () => {
    const proxyPlaceholder = await w.placeholders.issue({
      sandboxId: TRUSTING,
      secret: provider,
      hosts: ["api.allowed.test"],
    });
    expect(proxyPlaceholder).not.toBe(relayPlaceholder);
    expect((await w.placeholders.lookup(relayPlaceholder))?.purpose).toBe("relay");
    expect((await w.placeholders.lookup(proxyPlaceholder))?.purpose).toBeUndefined();
    const other = await w.placeholders.issue({
      sandboxId: "sb_gone",
      secret: provider,
      hosts: ["x.test"],
      purpose: "relay",
    });
    expect(await w.placeholders.revokeSandbox("sb_gone")).toBe(1);
    expect(await w.placeholders.lookup(other)).toBeNull();
    await w.placeholders.revoke(proxyPlaceholder);
  });

  it("redacts a bound secret the host echoes later, when nothing was swapped into the request", async () => {
    let stored = "";
    w.http.routes.push((req, res, body) => {
      if (req.method === "POST") stored = body;
      res.writeHead(200, { "content-type": "text/plain", "x-stored": stored });
      res.end(`stored: ${stored}`);
      return true;
    });
    const url = `http://api.allowed.test:${w.http.port}/note`;
    await viaProxy(w.proxyPort, url, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: notePlaceholder,
    });
    expect(stored).toBe(NOTE);
    const read = await viaProxy(w.proxyPort, url);
    expect(read.body).toBe(`stored: ${notePlaceholder}`);
    expect(read.headers["x-stored"]).toBe(notePlaceholder);
  });

  it("notes why each placeholder was left alone, naming secrets only", async () => {
    const ref: SecretRef = { name: "deleted", scope: { kind: "installation" } };
    await w.secrets.set(ref, "soon-deleted-secret-value-0003");
    const gone = await w.placeholders.issue({
      sandboxId: TRUSTING,
      secret: ref,
      hosts: ["api.allowed.test"],
    });
    await w.secrets.delete(ref);
    const unknown = "lobu_secret_00000000-0000-4000-8000-000000000000";
    await viaProxy(w.proxyPort, `http://other.allowed.test:${w.http.port}/?n=${notePlaceholder}`, {
      headers: { a: gone, b: unknown },
    });
    expect(w.audit[0]?.notes).toEqual([
      "secret deleted is not bound to other.allowed.test",
      "secret notes is not bound to other.allowed.test",
      "unknown or revoked placeholder",
    ]);
    await viaProxy(w.proxyPort, `http://api.allowed.test:${w.http.port}/?n=${notePlaceholder}`, {
      headers: { a: gone },
    });
    expect(w.audit[1]?.notes).toEqual([
      "secret deleted no longer exists",
      "secret notes may not be sent in the URL",
    ]);
    expect(JSON.stringify(w.audit)).not.toMatch(/lobu_secret_|note-secret-real/);
  });

  it("puts the refusal in the status line and an X-Lobu-Egress-Reason header, CONNECT included", async () => {
    const plain = await viaProxy(w.proxyPort, "http://nowhere.example/");
    expect(plain.status).toBe(403);
    expect(plain.headers["x-lobu-egress-reason"]).toBe(
      "Lobu egress proxy refused the request to nowhere.example: nowhere.example is not in the agent's network allow list. To allow it, ask the user to allow nowhere.example in the agent's settings page, or add it to [agents.helper.network] allow in lobu.toml.",
    );
    const tunnel = await connect(w.proxyPort, "nowhere.example:443");
    expect(tunnel.head).toMatch(
      /^HTTP\/1\.1 403 Forbidden - Lobu egress proxy refused the request to nowhere\.example: /,
    );
    expect(tunnel.head).toMatch(/\r\nX-Lobu-Egress-Reason: Lobu egress proxy refused/);
    expect(tunnel.body).toContain("To allow it, ask the user to allow nowhere.example");
  });
});
