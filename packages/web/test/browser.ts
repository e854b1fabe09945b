import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, chromium } from "playwright-core";

/** Real headless Chromium (Debian's package; CI installs it) driven by playwright-core. */

const HERE = dirname(fileURLToPath(import.meta.url));
export const WEB_DIR = resolve(HERE, "..");
export const REPO_ROOT = resolve(WEB_DIR, "../..");
/**
 * Where the browser tests save screenshots: a temporary directory, so a test run
 * never rewrites tracked files. `npm run screenshots` points it at docs/images
 * (LOBU_SCREENSHOTS_DIR) to refresh the documentation's pictures on purpose.
 */
export const SCREENSHOTS = process.env.LOBU_SCREENSHOTS_DIR
  ? resolve(process.env.LOBU_SCREENSHOTS_DIR)
  : join(tmpdir(), "lobu-screenshots");
const CHROMIUM = process.env.LOBU_CHROMIUM ?? "/usr/bin/chromium";

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `no Chromium at ${CHROMIUM}: install it (apt-get install -y chromium) or set LOBU_CHROMIUM`,
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/** Newest modification time under `path` (a file or a directory tree). */
function newest(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((name) => newest(join(path, name))));
}

/**
 * The gateway serves packages/web/dist: build it when it is missing or older than
 * the sources, so the browser tests never pass against a stale bundle.
 */
export function ensureWebBundle(): void {
  const index = join(WEB_DIR, "dist/index.html");
  const sources = ["src", "index.html", "vite.config.ts", "../core/src/views.ts"];
  if (
    existsSync(index) &&
    statSync(index).mtimeMs >= Math.max(...sources.map((p) => newest(join(WEB_DIR, p))))
  )
    return;
  const built = spawnSync(
    process.execPath,
    [join(REPO_ROOT, "node_modules/vite/bin/vite.js"), "build"],
    {
      cwd: WEB_DIR,
      encoding: "utf8",
    },
  );
  if (built.status !== 0) throw new Error(`vite build failed:\n${built.stdout}\n${built.stderr}`);
}

export function screenshotPath(name: string): string {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return join(SCREENSHOTS, name);
}

export const DESKTOP = { width: 1280, height: 900 };
/** A phone-sized viewport, like the Telegram Mini App on a typical handset. */
export const PHONE = { width: 390, height: 844 };
