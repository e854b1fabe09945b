import { randomBytes } from "node:crypto";
import {
  closeSync,
  constants,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { LobuError } from "@lobu/core";

/** Length of the AES-256 master key in bytes. */
export const MASTER_KEY_BYTES = 32;
export const MASTER_KEY_ENV = "LOBU_MASTER_KEY";
export const MASTER_KEY_FILE = "master.key";

export interface LoadMasterKeyOptions {
  /** The gateway's data directory; the key file lives at `<dataDir>/master.key`. */
  dataDir: string;
  /** Environment to read `LOBU_MASTER_KEY` from (usually `process.env`). */
  env: Record<string, string | undefined>;
}

export interface MasterKey {
  key: Buffer;
  /** Where the key came from, for `lobu doctor` and startup logs. */
  source: "env" | "file";
  /** Key file path when `source` is `file`. */
  path?: string;
  /** True when the key file was created by this call (first run). */
  created: boolean;
}

const HEX_64 = /^[0-9a-fA-F]{64}$/;
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

/** A fresh key, encoded the way the key file and `LOBU_MASTER_KEY` expect (base64). */
export function generateMasterKey(): string {
  return randomBytes(MASTER_KEY_BYTES).toString("base64");
}

/**
 * Decode a master key written as 64 hex characters or base64/base64url of 32 bytes.
 * `origin` names where it came from so the error says what to fix.
 */
export function parseMasterKey(text: string, origin: string): Buffer {
  const value = text.trim();
  if (HEX_64.test(value)) return Buffer.from(value, "hex");
  if (BASE64.test(value)) {
    const key = Buffer.from(value.replaceAll("-", "+").replaceAll("_", "/"), "base64");
    if (key.length === MASTER_KEY_BYTES) return key;
  }
  throw new LobuError(
    "master_key_invalid",
    `${origin} is not a valid master key: expected 32 random bytes as base64 (44 characters) or hex (64 characters)`,
    {
      status: 500,
      hint: `Generate one with \`openssl rand -base64 32\`. If secrets were already stored, you must use the key that encrypted them.`,
    },
  );
}

/**
 * The key that encrypts every stored secret: `LOBU_MASTER_KEY` when set, otherwise
 * `<dataDir>/master.key`, created (mode 0600) on first run. A key file that group
 * or others can read is refused: anyone who can read it can read every secret.
 */
export function loadMasterKey(opts: LoadMasterKeyOptions): Buffer {
  return resolveMasterKey(opts).key;
}

/** Like `loadMasterKey`, also saying where the key came from (startup log, `lobu doctor`). */
export function resolveMasterKey(opts: LoadMasterKeyOptions): MasterKey {
  const fromEnv = opts.env[MASTER_KEY_ENV];
  if (fromEnv !== undefined && fromEnv.trim() !== "") {
    return { key: parseMasterKey(fromEnv, MASTER_KEY_ENV), source: "env", created: false };
  }

  const path = join(opts.dataDir, MASTER_KEY_FILE);
  mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  let created = false;
  try {
    // O_EXCL: two gateways starting at once cannot both create (and overwrite) a key.
    const fd = openSync(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
    try {
      writeSync(fd, `${generateMasterKey()}\n`);
    } finally {
      closeSync(fd);
    }
    created = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }

  const st = statSync(path);
  if (!st.isFile()) {
    throw new LobuError("master_key_invalid", `${path} is not a regular file`, {
      status: 500,
      hint: `Remove it, or set ${MASTER_KEY_ENV} instead.`,
    });
  }
  if ((st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(3, "0");
    throw new LobuError(
      "master_key_permissions",
      `${path} is readable by other users (mode ${mode}); refusing to use it`,
      {
        status: 500,
        hint: `Run \`chmod 600 ${path}\` (and make sure it is owned by the user running the gateway), then start again.`,
      },
    );
  }
  if (typeof process.getuid === "function" && st.uid !== process.getuid()) {
    throw new LobuError(
      "master_key_permissions",
      `${path} is owned by uid ${st.uid}, not by the user running the gateway (uid ${process.getuid()})`,
      { status: 500, hint: `Run \`chown $(id -u) ${path}\` as its owner or root.` },
    );
  }
  const key = parseMasterKey(readFileSync(path, "utf8"), path);
  return { key, source: "file", path, created };
}
