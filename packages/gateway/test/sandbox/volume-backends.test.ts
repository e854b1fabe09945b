import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { createLogger } from "@lobu/core";
import { type S3Emulator, startS3Emulator } from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { S3Volumes, VolumeSaveFenced } from "../../src/sandbox/volume-backends.ts";

/**
 * Volumes saved to S3-compatible object storage (sandbox/volume-backends.ts),
 * with the official client against the testkit's S3 emulator (SigV4 checked):
 * a volume saved by one gateway is what another fetches, a current copy is
 * not fetched again, a stale copy never overwrites a newer save, and a client
 * with the wrong secret is refused.
 */

const CREDS = { accessKeyId: "AKIATESTLOBU", secretAccessKey: "s3cr3t-lobu-test-key" };
let s3: S3Emulator;
let root: string;
const log = createLogger("test");

const client = (secretAccessKey = CREDS.secretAccessKey) =>
  new S3Client({
    endpoint: s3.url,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: CREDS.accessKeyId, secretAccessKey },
  });

const gateway = (name: string) =>
  new S3Volumes({
    client: client(),
    bucket: "lobu",
    prefix: "team/",
    stateDir: join(root, name, "s3-state"),
    log,
  });

beforeAll(async () => {
  s3 = await startS3Emulator({ ...CREDS, buckets: ["lobu"] });
  root = mkdtempSync(join(tmpdir(), "lobu-s3-volumes-"));
});
afterAll(async () => {
  await s3?.close();
  rmSync(root, { recursive: true, force: true });
});

describe("S3 volumes", () => {
  it("moves a workspace from one gateway to another", async () => {
    const a = gateway("a");
    const b = gateway("b");
    const onA = join(root, "a", "volumes", "sbx_1");
    mkdirSync(join(onA, ".pi", "sessions"), { recursive: true });
    mkdirSync(join(onA, ".tmp"), { recursive: true });
    writeFileSync(join(onA, ".pi", "sessions", "s.jsonl"), '{"turn":1}\n');
    writeFileSync(join(onA, "notes.txt"), "hello");
    writeFileSync(join(onA, ".tmp", "scratch"), "not saved");
    symlinkSync("notes.txt", join(onA, "link"));

    // Never saved: a new, empty volume.
    const onB = join(root, "b", "volumes", "sbx_1");
    await b.fetch("sbx_1", onB);
    expect(existsSync(onB)).toBe(false);

    await a.persist("sbx_1", onA);
    const listed = await client().send(
      new ListObjectsV2Command({ Bucket: "lobu", Prefix: "team/" }),
    );
    expect(listed.Contents?.map((o) => o.Key)).toEqual(["team/volumes/sbx_1.tar"]);

    await b.fetch("sbx_1", onB);
    expect(readFileSync(join(onB, ".pi", "sessions", "s.jsonl"), "utf8")).toBe('{"turn":1}\n');
    expect(readFileSync(join(onB, "notes.txt"), "utf8")).toBe("hello");
    expect(readlinkSync(join(onB, "link"))).toBe("notes.txt");
    expect(existsSync(join(onB, ".tmp"))).toBe(false);

    // B's copy is the saved one: fetching again keeps it as it is.
    writeFileSync(join(onB, "notes.txt"), "changed on b");
    await b.fetch("sbx_1", onB);
    expect(readFileSync(join(onB, "notes.txt"), "utf8")).toBe("changed on b");

    // B saves; A's older copy is replaced on its next start there (nothing of it is left).
    writeFileSync(join(onB, "new.txt"), "from b");
    await b.persist("sbx_1", onB);
    writeFileSync(join(onA, "stale.txt"), "only on a");
    await a.fetch("sbx_1", onA);
    expect(readFileSync(join(onA, "notes.txt"), "utf8")).toBe("changed on b");
    expect(readFileSync(join(onA, "new.txt"), "utf8")).toBe("from b");
    expect(existsSync(join(onA, "stale.txt"))).toBe(false);

    await a.remove("sbx_1");
    expect(s3.objects.get("lobu")?.size).toBe(0);
  });

  it("never lets a gateway that lost the sandbox overwrite a newer save (conditional writes)", async () => {
    const a = gateway("fa");
    const b = gateway("fb");
    const onA = join(root, "fa", "volumes", "sbx_3");
    const onB = join(root, "fb", "volumes", "sbx_3");
    mkdirSync(onA, { recursive: true });
    writeFileSync(join(onA, "turn"), "1 on a");
    await a.persist("sbx_3", onA);
    // B takes the sandbox over (A stalled past its lease), continues and saves.
    await b.fetch("sbx_3", onB);
    writeFileSync(join(onB, "turn"), "2 on b");
    await b.persist("sbx_3", onB);
    // A wakes up and saves its stale copy: refused by the store, B's save stands.
    const refusedBefore = s3.conditionsRefused;
    writeFileSync(join(onA, "turn"), "2 on a (stale)");
    await expect(a.persist("sbx_3", onA)).rejects.toBeInstanceOf(VolumeSaveFenced);
    expect(s3.conditionsRefused).toBe(refusedBefore + 1);
    // A gateway that never saw the volume cannot create it over an existing one either.
    const c = gateway("fc");
    const onC = join(root, "fc", "volumes", "sbx_3");
    mkdirSync(onC, { recursive: true });
    await expect(c.persist("sbx_3", onC)).rejects.toBeInstanceOf(VolumeSaveFenced);
    await a.fetch("sbx_3", onA);
    expect(readFileSync(join(onA, "turn"), "utf8")).toBe("2 on b");
    // After fetching the newest, A may save again.
    writeFileSync(join(onA, "turn"), "3 on a");
    await a.persist("sbx_3", onA);
    await b.fetch("sbx_3", onB);
    expect(readFileSync(join(onB, "turn"), "utf8")).toBe("3 on a");
    // Erased on A: B starts it anew (its record of the old object is dropped) and saves it.
    await a.remove("sbx_3");
    await b.fetch("sbx_3", onB);
    await b.persist("sbx_3", onB);
    expect(s3.objects.get("lobu")?.has("team/volumes/sbx_3.tar")).toBe(true);
    await b.remove("sbx_3");
  });

  it("refuses a sandbox id that is not one", async () => {
    await expect(gateway("a").fetch("../etc", join(root, "x"))).rejects.toThrow();
  });

  it("is refused by the store with the wrong secret", async () => {
    const before = s3.refused;
    const forged = new S3Volumes({
      client: client("not-the-secret"),
      bucket: "lobu",
      prefix: "team/",
      stateDir: join(root, "f"),
      log,
    });
    const dir = join(root, "f", "vol");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "x"), "x");
    await expect(forged.persist("sbx_2", dir)).rejects.toThrow(/signature/i);
    expect(s3.refused).toBeGreaterThan(before);
    expect(s3.objects.get("lobu")?.has("team/volumes/sbx_2.tar")).toBe(false);
  });
});
