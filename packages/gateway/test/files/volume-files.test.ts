import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "@lobu/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileBlobs } from "../../src/conversations/file-blobs.ts";
import { FileTooLarge } from "../../src/domain/files.ts";
import { sendFileTool } from "../../src/runtime/send-file.ts";
import {
  bytesUnder,
  readFromVolume,
  resolveInVolume,
  safeFileName,
  writeIntoVolume,
} from "../../src/sandbox/volume-files.ts";
import { createStore } from "../../src/store/index.ts";

/**
 * The gateway's writes into and reads from a sandbox volume, attacked the way
 * an agent (which owns the volume) or a person (who names the file) can:
 * traversal in names and paths, NUL bytes, colliding names, links planted to
 * lead the gateway out, FIFOs and devices.
 */

let root: string;
let volume: string;
let outside: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "lobu-volfiles-"));
  volume = join(root, "volume");
  outside = join(root, "outside");
  mkdirSync(volume);
  mkdirSync(outside);
  writeFileSync(join(outside, "secret.txt"), "host secret");
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

async function* bytes(text: string | Buffer) {
  yield typeof text === "string" ? Buffer.from(text) : text;
}

const write = (name: string, body = "hello", maxBytes = 1024) =>
  writeIntoVolume({
    volumeDir: volume,
    dirs: ["inbox", "2026-12-06"],
    name,
    body: bytes(body),
    maxBytes,
  });

describe("file names from people", () => {
  it.each([
    ["../../x", "x"],
    ["/etc/passwd", "passwd"],
    ["..", "file"],
    [".", "file"],
    ["a\0b.csv", "ab.csv"],
    ["..\\..\\win.ini", "win.ini"],
    [".bashrc", "bashrc"],
    ["re\u202eport.csv", "report.csv"],
    ["", "file"],
  ])("%j is written as %j, inside the day's inbox", async (given, expected) => {
    const written = await write(given);
    expect(written.name).toBe(expected);
    expect(written.rel).toBe(`inbox/2026-12-06/${expected}`);
    expect(readFileSync(join(volume, written.rel), "utf8")).toBe("hello");
    expect(readdirSync(outside)).toEqual(["secret.txt"]);
  });

  it("keeps long names under the limit with their extension", () => {
    const name = safeFileName(`${"é".repeat(300)}.csv`);
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(200);
    expect(name.endsWith(".csv")).toBe(true);
  });

  it("cuts long names between characters, never inside one", () => {
    // Emoji are two UTF-16 units each: a cut between them would leave half of one.
    const name = safeFileName(`a${"😀".repeat(80)}.png`);
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(200);
    expect(name.endsWith(".png")).toBe(true);
    expect(name.isWellFormed()).toBe(true);
    expect(name).toBe(`a${"😀".repeat(48)}.png`);
  });

  it("never overwrites: colliding names get a number", async () => {
    const a = await write("report.csv", "one");
    const b = await write("report.csv", "two");
    const c = await write("../report.csv", "three");
    expect([a.name, b.name, c.name]).toEqual(["report.csv", "report (1).csv", "report (2).csv"]);
    expect(readFileSync(join(volume, a.rel), "utf8")).toBe("one");
  });

  it("keeps the same file once (a retried turn), and never reuses a link's target", async () => {
    const a = await write("same.csv", "one");
    const again = await write("same.csv", "one");
    expect(again.rel).toBe(a.rel);
    expect(readdirSync(join(volume, "inbox", "2026-12-06"))).toEqual(["same.csv"]);
    symlinkSync(join(outside, "secret.txt"), join(volume, "inbox", "2026-12-06", "s.txt"));
    const beside = await write("s.txt", "host secret");
    expect(beside.name).toBe("s (1).txt");
  });
});

describe("atomic writes", () => {
  it("leaves nothing behind when the file is over the limit", async () => {
    await expect(write("big.bin", "x".repeat(2000), 1000)).rejects.toBeInstanceOf(FileTooLarge);
    expect(readdirSync(join(volume, "inbox", "2026-12-06"))).toEqual([]);
  });

  it("leaves nothing behind when the download breaks", async () => {
    async function* broken() {
      yield Buffer.from("partial");
      throw new Error("connection reset");
    }
    await expect(
      writeIntoVolume({
        volumeDir: volume,
        dirs: ["inbox", "d"],
        name: "a.txt",
        body: broken(),
        maxBytes: 100,
      }),
    ).rejects.toThrow("connection reset");
    expect(readdirSync(join(volume, "inbox", "d"))).toEqual([]);
  });
});

describe("links planted by the agent", () => {
  it("refuses an inbox that is a link out of the volume", async () => {
    symlinkSync(outside, join(volume, "inbox"));
    await expect(write("x.txt")).rejects.toMatchObject({ code: "file_path_refused" });
    expect(readdirSync(outside)).toEqual(["secret.txt"]);
  });

  it("refuses a day folder that is a link, and a file where a folder should be", async () => {
    mkdirSync(join(volume, "inbox"));
    symlinkSync(outside, join(volume, "inbox", "2026-12-06"));
    await expect(write("x.txt")).rejects.toMatchObject({ code: "file_path_refused" });
    rmSync(join(volume, "inbox"), { recursive: true });
    writeFileSync(join(volume, "inbox"), "not a folder");
    await expect(write("x.txt")).rejects.toMatchObject({ code: "file_path_refused" });
    expect(readdirSync(outside)).toEqual(["secret.txt"]);
  });

  it("counts an inbox's bytes without following links, its own included", async () => {
    writeFileSync(join(outside, "big.bin"), Buffer.alloc(5000));
    symlinkSync(outside, join(volume, "inbox"));
    expect(await bytesUnder(volume, "inbox")).toBe(0);
    rmSync(join(volume, "inbox"));
    await write("a.txt", "12345");
    symlinkSync(outside, join(volume, "inbox", "2026-12-06", "out"));
    symlinkSync(join(outside, "big.bin"), join(volume, "inbox", "big.bin"));
    expect(await bytesUnder(volume, "inbox")).toBe(5);
  });

  it("does not follow a link that takes the file's name", async () => {
    mkdirSync(join(volume, "inbox", "2026-12-06"), { recursive: true });
    symlinkSync(join(outside, "secret.txt"), join(volume, "inbox", "2026-12-06", "secret.txt"));
    const written = await write("secret.txt", "mine");
    expect(written.name).toBe("secret (1).txt");
    expect(readFileSync(join(outside, "secret.txt"), "utf8")).toBe("host secret");
  });
});

describe("files the agent sends (send_file paths)", () => {
  const read = async (path: string, max = 1024) =>
    (await readFromVolume(volume, await resolveInVolume(volume, path), max)).toString();

  beforeEach(() => {
    mkdirSync(join(volume, "out"));
    writeFileSync(join(volume, "out", "result.csv"), "a,b\n1,2\n");
  });

  it("reads relative, ~/ and /workspace paths", async () => {
    expect(await read("out/result.csv")).toBe("a,b\n1,2\n");
    expect(await read("~/out/result.csv")).toBe("a,b\n1,2\n");
    expect(await read("/workspace/out/../out/result.csv")).toBe("a,b\n1,2\n");
  });

  it.each([
    "../../outside/secret.txt",
    "/etc/passwd",
    "/workspace/../etc/passwd",
    "~/../outside/secret.txt",
    "out/result.csv\0.txt",
    "/tmp/x",
  ])("refuses %j", async (path) => {
    await expect(read(path)).rejects.toMatchObject({ code: "file_path_refused" });
  });

  it("follows links inside the workspace, sandbox-absolute ones too, and refuses links out", async () => {
    symlinkSync("out/result.csv", join(volume, "rel-link"));
    symlinkSync("/workspace/out/result.csv", join(volume, "abs-link"));
    symlinkSync(join(outside, "secret.txt"), join(volume, "host-link"));
    symlinkSync("../outside/secret.txt", join(volume, "up-link"));
    symlinkSync(outside, join(volume, "dir-link"));
    expect(await read("rel-link")).toBe("a,b\n1,2\n");
    expect(await read("abs-link")).toBe("a,b\n1,2\n");
    for (const path of ["host-link", "up-link", "dir-link/secret.txt"])
      await expect(read(path)).rejects.toMatchObject({ code: "file_path_refused" });
  });

  it("refuses folders, FIFOs and devices, and files over the limit", async () => {
    execFileSync("mkfifo", [join(volume, "pipe")]);
    await expect(read("pipe")).rejects.toMatchObject({ code: "file_path_refused" });
    await expect(read("out")).rejects.toMatchObject({ code: "file_path_refused" });
    symlinkSync("/dev/zero", join(volume, "zero"));
    await expect(read("zero")).rejects.toMatchObject({ code: "file_path_refused" });
    await expect(read("out/result.csv", 4)).rejects.toMatchObject({ code: "file_too_large" });
    expect(existsSync(join(volume, "pipe"))).toBe(true);
  });
});

describe("send_file names", () => {
  it("sends a file under a clean name: no bidi override, control characters or leading dot", async () => {
    // An agent (or what steers it) names a file to look like something else:
    // "invoice<RLO>fdp.exe" shows as "invoiceexe.pdf".
    const given = "\u202einvoice\u202efdp.exe\n";
    writeFileSync(join(volume, given), "MZ");
    writeFileSync(join(volume, ".hidden report.txt"), "text");
    const store = await createStore({ driver: "sqlite", path: join(root, "lobu.db") });
    try {
      const blobs = new FileBlobs({
        kv: store.kv,
        log: createLogger("test", { destination: { write: () => {} } }),
      });
      const tool = sendFileTool({
        limits: { max_send_mb: 1, download_ttl: 60_000 },
        volumeDir: () => volume,
        filesFor: () => undefined,
        blobs,
        turns: { stream: () => undefined },
      });
      const ctx = {
        sandboxId: "sbx_1",
        messageId: "msg_1",
        origin: { platform: "api", channelId: "c", userId: "u", isDirect: true },
      } as never;
      expect(await tool.execute({ path: given }, ctx)).toMatch(/^Sent invoicefdp\.exe \(/);
      expect(await tool.execute({ path: ".hidden report.txt" }, ctx)).toMatch(
        /^Sent hidden report\.txt \(text\/plain, 4 bytes\)/,
      );
    } finally {
      await store.close();
    }
  });
});
