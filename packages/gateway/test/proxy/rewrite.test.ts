import { once } from "node:events";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import {
  LiteralRedactor,
  literalRedactor,
  PlaceholderSwapStream,
  replacePlaceholders,
} from "../../src/proxy/rewrite.ts";

const P = "lobu_secret_0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const Q = "lobu_secret_11111111-2222-4333-8444-555555555555";

async function run(
  stream: NodeJS.ReadWriteStream,
  chunks: Buffer[],
): Promise<{ out: Buffer; pieces: Buffer[] }> {
  const pieces: Buffer[] = [];
  const src = Readable.from(chunks, { objectMode: false });
  for await (const c of src.pipe(stream as unknown as NodeJS.WritableStream & Readable))
    pieces.push(c as Buffer);
  return { out: Buffer.concat(pieces), pieces };
}

function splits(text: string): Buffer[][] {
  const buf = Buffer.from(text);
  const out: Buffer[][] = [];
  for (let i = 1; i < buf.length; i++) out.push([buf.subarray(0, i), buf.subarray(i)]);
  return out;
}

describe("placeholder swapping", () => {
  it("replaces known placeholders and leaves the others", async () => {
    const text = `a ${P} b ${Q} c ${P}`;
    let lookups = 0;
    const out = await replacePlaceholders(text, async (p) => {
      lookups++;
      return p === P ? "SECRET" : null;
    });
    expect(out).toBe(`a SECRET b ${Q} c SECRET`);
    expect(lookups).toBe(2);
  });

  it("streams across every possible chunk boundary", async () => {
    const text = `{"key":"${P}","n":"héllo"}`;
    for (const chunks of splits(text)) {
      const { out } = await run(new PlaceholderSwapStream(async () => "sëcret"), chunks);
      expect(out.toString("utf8")).toBe(`{"key":"sëcret","n":"héllo"}`);
    }
  });

  it("does not hold back chunks that cannot start a placeholder", async () => {
    // Each event comes out before the next one goes in (SSE must not wait).
    const stream = new PlaceholderSwapStream(async () => "x");
    for (const event of ["data: one\n\n", "data: two\n\n", `data: ${P}\n\n`]) {
      const next = once(stream, "data");
      stream.write(Buffer.from(event));
      const [chunk] = await next;
      expect(String(chunk)).toBe(event.replace(P, "x"));
    }
  });

  it("keeps binary bodies intact", async () => {
    const bin = Buffer.from([0, 255, 128, 10, 13, 0x6c, 0xc3]);
    const { out } = await run(new PlaceholderSwapStream(async () => "x"), [
      bin,
      Buffer.from(P),
      bin,
    ]);
    expect(out.equals(Buffer.concat([bin, Buffer.from("x"), bin]))).toBe(true);
  });
});

describe("secret redaction", () => {
  const secret = "sk-live-ABCdef0123456789";

  it("replaces echoed values in raw, JSON-escaped and URL-encoded form", () => {
    const quoted = 'p"ss/wörd+1';
    const r = new LiteralRedactor([
      [secret, P],
      [quoted, Q],
    ]);
    expect(r.redact(`k=${secret};`)).toBe(`k=${P};`);
    const [json] = r.step(Buffer.from(JSON.stringify({ v: quoted })).toString("latin1"));
    expect(Buffer.from(json, "latin1").toString()).toBe(JSON.stringify({ v: Q }));
    expect(r.step(`q=${encodeURIComponent(quoted)}&`)[0]).toBe(`q=${Q}&`);
    const spaced = "pass word (1)!";
    const form = new LiteralRedactor([[spaced, P]]);
    expect(form.redact(new URLSearchParams({ q: spaced }).toString())).toBe(`q=${P}`);
  });

  it("redacts across every chunk boundary", async () => {
    const text = `{"echo":"Bearer ${secret}","tail":"ok"}`;
    for (const chunks of splits(text)) {
      const { out } = await run(new LiteralRedactor([[secret, P]]).stream(), chunks);
      expect(out.toString()).toBe(`{"echo":"Bearer ${P}","tail":"ok"}`);
    }
  });

  it("lets each chunk through at once when no secret can start in it", async () => {
    const stream = new LiteralRedactor([[secret, P]]).stream();
    for (const event of ["data: one\n\n", `data: ${secret}\n\n`]) {
      const next = once(stream, "data");
      stream.write(Buffer.from(event));
      expect(String((await next)[0])).toBe(event.replace(secret, P));
    }
  });

  it("redacts base64 forms at every offset and lets a half-received long form win over a short one inside it", async () => {
    const sent = Buffer.from(`x-access-token:${P}`).toString("base64");
    const produced = Buffer.from(`x-access-token:${secret}`).toString("base64");
    for (const chunks of splits(`a ${produced} b`)) {
      const r = new LiteralRedactor([
        [secret, P],
        [produced, sent],
      ]);
      const { out } = await run(r.stream(), chunks);
      expect(out.toString()).toBe(`a ${sent} b`);
    }
    const r = new LiteralRedactor([[secret, P]]);
    for (const prefix of ["", "u", "us", "use"]) {
      for (const enc of ["base64", "base64url"] as const) {
        const text = Buffer.from(`${prefix}${secret}!`).toString(enc);
        const back = Buffer.from(r.redact(text), enc).toString("latin1");
        expect(back, `${prefix} ${enc}`).not.toContain(secret.slice(2, -2));
        expect(back, `${prefix} ${enc}`).toContain(P.slice(2, -2));
      }
    }
  });

  it("redacts a whole secret held back at the end of a stream (one secret a prefix of another)", async () => {
    const r = new LiteralRedactor([
      [secret, P],
      [`${secret}-longer`, Q],
    ]);
    // The tail could still grow into the longer secret, so it is held back; the
    // stream then ends, and what was held back is a secret of its own.
    const { out } = await run(r.stream(), [Buffer.from(`a ${secret}`)]);
    expect(out.toString()).toBe(`a ${P}`);
    expect(r.redactBytes(Buffer.from(`a ${secret}`)).toString()).toBe(`a ${P}`);
  });

  it("holds back only a possible prefix", () => {
    const r = new LiteralRedactor([[secret, P]]);
    expect(r.step("data: x\n\n")).toEqual(["data: x\n\n", ""]);
    expect(r.step("abc sk-li")).toEqual(["abc ", "sk-li"]);
    expect(r.step("abc sk-lix")).toEqual(["abc sk-lix", ""]);
  });

  it("is built once for the same pairs, and anew when a value or its replacement changes", () => {
    const a = literalRedactor([[secret, P]]);
    expect(literalRedactor([[secret, P]])).toBe(a);
    // A rotated secret, or the same one bound to another placeholder, is another redactor.
    const rotated = literalRedactor([[`${secret}X`, P]]);
    const rebound = literalRedactor([[secret, Q]]);
    expect(rotated).not.toBe(a);
    expect(rebound).not.toBe(a);
    expect(rotated.redact(`${secret}X`)).toBe(P);
    expect(rebound.redact(secret)).toBe(Q);
  });

  it("redacts the same value back to each redactor's own replacement, in every echo form, streams interleaved", async () => {
    // The relay: one provider key, a new placeholder each turn.
    const [forP, forQ] = [literalRedactor([[secret, P]]), literalRedactor([[secret, Q]])];
    const b64 = Buffer.from(secret).toString("base64");
    const echoed = `${secret} ${encodeURIComponent(secret)} ${b64}`;
    const back = (r: string) =>
      `${r} ${encodeURIComponent(r)} ${Buffer.from(r).toString("base64")}`;
    expect(forP.redact(echoed)).toBe(back(P));
    expect(forQ.redact(echoed)).toBe(back(Q));
    const [a, b] = [forP.stream(), forQ.stream()];
    const outA: Buffer[] = [];
    const outB: Buffer[] = [];
    a.on("data", (c: Buffer) => outA.push(c));
    b.on("data", (c: Buffer) => outB.push(c));
    for (let i = 0; i < echoed.length; i += 5) {
      a.write(Buffer.from(echoed.slice(i, i + 5)));
      b.write(Buffer.from(echoed.slice(i, i + 5)));
    }
    a.end();
    b.end();
    await Promise.all([once(a, "end"), once(b, "end")]);
    expect(Buffer.concat(outA).toString()).toBe(back(P));
    expect(Buffer.concat(outB).toString()).toBe(back(Q));
  });

  it("never takes one list of values for another, whatever characters the values hold", () => {
    const [a, b] = ["sk-first-0123456789", "sk-second-0123456789"];
    const two = literalRedactor([
      [a, P],
      [b, Q],
    ]);
    // Joined with a separator, these two lists would read the same.
    const one = literalRedactor([[`${a}\0${b}`, P]]);
    const oneMore = literalRedactor([
      [`${a}\0`, P],
      [b, Q],
    ]);
    expect(two.redact(`${a} ${b}`)).toBe(`${P} ${Q}`);
    expect(one.redact(`${a}\0${b}`)).toBe(P);
    expect(one.redact(a)).toBe(a);
    expect(oneMore.redact(`${a}\0 ${b}`)).toBe(`${P} ${Q}`);
  });

  it("serves interleaved streams sharing one redactor, each with its own held-back tail", async () => {
    const shared = literalRedactor([[secret, P]]);
    const [a, b] = [shared.stream(), shared.stream()];
    const outA: Buffer[] = [];
    const outB: Buffer[] = [];
    a.on("data", (c: Buffer) => outA.push(c));
    b.on("data", (c: Buffer) => outB.push(c));
    const half = secret.length / 2;
    a.write(Buffer.from(`a:${secret.slice(0, half)}`));
    b.write(Buffer.from(`b:${secret.slice(0, 3)}`));
    a.end(Buffer.from(`${secret.slice(half)};`));
    b.end(Buffer.from("zz;"));
    await Promise.all([once(a, "end"), once(b, "end")]);
    expect(Buffer.concat(outA).toString()).toBe(`a:${P};`);
    expect(Buffer.concat(outB).toString()).toBe(`b:${secret.slice(0, 3)}zz;`);
  });
});
