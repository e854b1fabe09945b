// @peculiar/x509 (through tsyringe) needs the Reflect metadata API loaded first.
import "reflect-metadata";
import { randomBytes, webcrypto } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { createSecureContext, rootCertificates, type SecureContext } from "node:tls";
import { LobuError } from "@lobu/core";
import * as x509 from "@peculiar/x509";
import { parseIpLiteral } from "../domain/ip-literal.ts";

/**
 * The per-installation CA that lets the egress proxy terminate TLS for hosts where
 * a sandbox has a bound placeholder (to swap it for the real secret). Only the
 * worker trusts it (via the bundle from `caBundle`); the gateway itself never does,
 * and re-originates upstream TLS with normal verification.
 */

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
const crypto = webcrypto;
x509.cryptoProvider.set(crypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING = { name: "ECDSA", hash: "SHA-256" } as const;
const CA_DIR = "ca";
const CA_KEY = "lobu-ca.key";
const CA_CERT = "lobu-ca.crt";
const BUNDLE = "ca-bundle.pem";
const SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";
const DAY = 86_400_000;
const CA_LIFETIME = 10 * 365 * DAY;
const LEAF_LIFETIME = 30 * DAY;
/** Re-mint a cached leaf this long before it expires. */
const LEAF_RENEW = 2 * DAY;
const LEAF_CACHE_MAX = 2_000;

export interface CertificateAuthority {
  /** PEM of the CA certificate (what the worker trusts). */
  readonly certPem: string;
  /** A TLS server context presenting a leaf certificate for `host`, minted and cached. */
  secureContextFor(host: string): Promise<SecureContext>;
  /** Leaf certificate and key PEM for `host` (tests, diagnostics). */
  leafFor(host: string): Promise<{ certPem: string; keyPem: string }>;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive INTEGER
  return b.toString("hex");
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

async function importKeyPem(pem: string): Promise<CryptoKey> {
  return crypto.subtle.importKey("pkcs8", x509.PemConverter.decodeFirst(pem), EC, false, ["sign"]);
}

async function createRoot(): Promise<{ certPem: string; keyPem: string }> {
  const keys = (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=Lobu egress CA (${hostname()} ${randomBytes(4).toString("hex")}), O=Lobu`,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + CA_LIFETIME),
    keys,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString("pem"), keyPem: await exportKeyPem(keys.privateKey) };
}

function writeAtomic(path: string, data: string, mode: number): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, data, { mode, flag: "wx" });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function checkKeyFile(path: string): void {
  const st = statSync(path);
  if ((st.mode & 0o077) !== 0) {
    throw new LobuError(
      "ca_key_permissions",
      `${path} is readable by other users (mode ${(st.mode & 0o777).toString(8)}); refusing to use it`,
      {
        status: 500,
        hint: `Run \`chmod 600 ${path}\`. Anyone who can read it can impersonate any site to your agents.`,
      },
    );
  }
}

/** Load `<dataDir>/ca/lobu-ca.{key,crt}`, creating them (key mode 0600) on first run. */
export async function loadOrCreateCa(dataDir: string): Promise<CertificateAuthority> {
  const dir = join(dataDir, CA_DIR);
  const keyPath = join(dir, CA_KEY);
  const certPath = join(dir, CA_CERT);
  // Not 0700: the bundle in here is public and drivers mount it into sandboxes.
  mkdirSync(dir, { recursive: true, mode: 0o755 });

  if (!existsSync(keyPath) && !existsSync(certPath)) {
    const root = await createRoot();
    // The key first: a cert whose key was lost is useless, a key without cert is retried.
    writeAtomic(keyPath, root.keyPem, 0o600);
    writeAtomic(certPath, root.certPem, 0o644);
  }
  if (!existsSync(keyPath) || !existsSync(certPath)) {
    throw new LobuError(
      "ca_incomplete",
      `the Lobu CA in ${dir} is incomplete (one of ${CA_KEY}, ${CA_CERT} is missing)`,
      {
        status: 500,
        hint: `Delete ${dir} to create a new CA (sandboxes pick up the new bundle when they restart).`,
      },
    );
  }
  checkKeyFile(keyPath);
  const certPem = readFileSync(certPath, "utf8");
  const caCert = new x509.X509Certificate(certPem);
  const caKey = await importKeyPem(readFileSync(keyPath, "utf8"));
  return new LocalCa(certPem, caCert, caKey);
}

interface CachedLeaf {
  expiresAt: number;
  pem: Promise<{ certPem: string; keyPem: string }>;
  context?: Promise<SecureContext>;
}

class LocalCa implements CertificateAuthority {
  readonly certPem: string;
  readonly #caCert: x509.X509Certificate;
  readonly #caKey: CryptoKey;
  /** One key pair for every leaf: minting a leaf is then one signature. */
  #leafKeys?: Promise<{ pair: CryptoKeyPair; pem: string }>;
  readonly #cache = new Map<string, CachedLeaf>();

  constructor(certPem: string, caCert: x509.X509Certificate, caKey: CryptoKey) {
    this.certPem = certPem;
    this.#caCert = caCert;
    this.#caKey = caKey;
  }

  #keys(): Promise<{ pair: CryptoKeyPair; pem: string }> {
    this.#leafKeys ??= (async () => {
      const pair = (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
      return { pair, pem: await exportKeyPem(pair.privateKey) };
    })();
    return this.#leafKeys;
  }

  #entry(host: string): CachedLeaf {
    const now = Date.now();
    const hit = this.#cache.get(host);
    if (hit && hit.expiresAt - LEAF_RENEW > now) {
      // Map order doubles as LRU order.
      this.#cache.delete(host);
      this.#cache.set(host, hit);
      return hit;
    }
    const expiresAt = now + LEAF_LIFETIME;
    const entry: CachedLeaf = { expiresAt, pem: this.#mint(host, now, expiresAt) };
    entry.pem.catch(() => this.#cache.delete(host));
    this.#cache.set(host, entry);
    while (this.#cache.size > LEAF_CACHE_MAX) {
      this.#cache.delete(this.#cache.keys().next().value!);
    }
    return entry;
  }

  async #mint(
    host: string,
    now: number,
    expiresAt: number,
  ): Promise<{ certPem: string; keyPem: string }> {
    const keys = await this.#keys();
    const ip = parseIpLiteral(host);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${ip ? ip.toString() : host}`,
      issuer: this.#caCert.subject,
      notBefore: new Date(now - 3_600_000),
      notAfter: new Date(expiresAt),
      publicKey: keys.pair.publicKey,
      signingKey: this.#caKey,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([
          ip ? { type: "ip", value: ip.toString() } : { type: "dns", value: host },
        ]),
        await x509.SubjectKeyIdentifierExtension.create(keys.pair.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(this.#caCert),
      ],
    });
    return { certPem: `${cert.toString("pem")}\n${this.certPem}`, keyPem: keys.pem };
  }

  leafFor(host: string): Promise<{ certPem: string; keyPem: string }> {
    return this.#entry(host).pem;
  }

  secureContextFor(host: string): Promise<SecureContext> {
    const entry = this.#entry(host);
    entry.context ??= entry.pem.then(({ certPem, keyPem }) =>
      createSecureContext({ cert: certPem, key: keyPem, minVersion: "TLSv1.2" }),
    );
    return entry.context;
  }
}

/**
 * Write `<dataDir>/ca/ca-bundle.pem`: the system CAs plus the Lobu CA, for the
 * worker to trust (see workerProxyEnv). Returns its path. Rewritten on every call
 * so it follows system CA updates.
 */
export async function caBundle(
  dataDir: string,
  opts: { systemBundlePath?: string } = {},
): Promise<string> {
  const ca = await loadOrCreateCa(dataDir);
  const systemPath = opts.systemBundlePath ?? SYSTEM_BUNDLE;
  // Node's bundled Mozilla store when the system has none (containers, macOS).
  const system = existsSync(systemPath)
    ? readFileSync(systemPath, "utf8")
    : `${rootCertificates.join("\n")}\n`;
  const path = join(dataDir, CA_DIR, BUNDLE);
  writeAtomic(path, `${system.trimEnd()}\n# Lobu egress CA\n${ca.certPem.trimEnd()}\n`, 0o644);
  return path;
}
