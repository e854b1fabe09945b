import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import {
  GatewayToWorker,
  isPlaceholder,
  MAX_LINE_BYTES,
  newId,
  newPlaceholder,
  PLACEHOLDER_PATTERN,
  readNdjson,
  redactSecrets,
  registerSecret,
  sandboxIdOf,
  writeNdjson,
} from "../src/index.ts";

describe("routing keys", () => {
  const base = {
    agentId: "default",
    platform: "slack",
    workspace: "T1",
    userId: "U1",
    channelId: "C1",
  };
  it("are stable and path-safe", () => {
    expect(sandboxIdOf(base)).toBe(sandboxIdOf({ ...base }));
    expect(sandboxIdOf(base)).toMatch(/^sb_[0-9a-z]{24}$/);
  });
  it("differ for every part of the key", () => {
    const ids = new Set([
      sandboxIdOf(base),
      sandboxIdOf({ ...base, agentId: "other" }),
      sandboxIdOf({ ...base, platform: "telegram" }),
      sandboxIdOf({ ...base, workspace: "T2" }),
      sandboxIdOf({ ...base, userId: "U2" }),
      sandboxIdOf({ ...base, channelId: "C2" }),
      // No ambiguity from separators inside values.
      sandboxIdOf({ ...base, userId: "U1", channelId: "C1x" }),
      sandboxIdOf({ ...base, userId: "U1C1", channelId: "x" }),
    ]);
    expect(ids.size).toBe(8);
  });
});

describe("ids", () => {
  it("sort by creation time", () => {
    const ids = Array.from({ length: 50 }, () => newId("msg"));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(50);
  });
});

describe("placeholders", () => {
  it("look like lobu_secret_<uuid> and are recognised", () => {
    const p = newPlaceholder();
    expect(isPlaceholder(p)).toBe(true);
    expect(isPlaceholder(`${p}x`)).toBe(false);
    expect(`Bearer ${p}`.match(PLACEHOLDER_PATTERN)?.[0]).toBe(p);
  });
});

describe("NDJSON framing", () => {
  it("splits lines across chunks and skips malformed ones", async () => {
    const stream = new PassThrough();
    const values: unknown[] = [];
    const errors: Error[] = [];
    readNdjson(
      stream,
      (v) => values.push(v),
      (e) => errors.push(e),
    );
    stream.write('{"a":1}\n{"b"');
    stream.write(':2}\nnot json\n\n{"c":3}\n');
    writeNdjson(stream, { d: "x\ny" });
    await new Promise((r) => setImmediate(r));
    expect(values).toEqual([{ a: 1 }, { b: 2 }, { c: 3 }, { d: "x\ny" }]);
    expect(errors).toHaveLength(1);
  });

  it("drops a line over the limit whole, its tail too, and reads on after it", async () => {
    const stream = new PassThrough();
    const values: unknown[] = [];
    const errors: Error[] = [];
    readNdjson(
      stream,
      (v) => values.push(v),
      (e) => errors.push(e),
    );
    // An untrusted worker's oversized line whose tail is itself a well-formed message.
    const filler = "x".repeat(64 * 1024);
    stream.write('{"pad":"');
    for (let sent = 0; sent <= MAX_LINE_BYTES; sent += filler.length) stream.write(filler);
    stream.write('"}{"t":"smuggled"}\n{"t":"next"}\n');
    await new Promise((r) => setImmediate(r));
    expect(values).toEqual([{ t: "next" }]);
    expect(errors.map((e) => e.message)).toEqual(["NDJSON line exceeds the maximum size"]);
  });

  it("validates control messages", () => {
    expect(GatewayToWorker.safeParse({ t: "shutdown" }).success).toBe(true);
    expect(GatewayToWorker.safeParse({ t: "turn", sandboxId: "x" }).success).toBe(false);
  });
});

describe("log redaction", () => {
  it("scrubs registered secret values, including JSON-escaped forms", () => {
    registerSecret('sk-secret-"quoted"-value');
    const line = JSON.stringify({ msg: 'key is sk-secret-"quoted"-value' });
    expect(redactSecrets(line)).not.toContain("sk-secret");
    expect(redactSecrets(line)).toContain("[REDACTED]");
  });
});
