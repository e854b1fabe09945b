import { existsSync, readFileSync } from "node:fs";
import { extname, join, resolve } from "node:path";
import { randomToken } from "@lobu/core";
import type { Context, MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";

/**
 * What the settings page, the admin UI and platform pages (Slack's OAuth
 * result) share on the HTTP side: security headers, session cookies, the
 * Origin check for state-changing requests, small server-rendered pages and
 * the built React bundle (packages/web/dist). Sessions themselves are
 * access/web-sessions.ts; the middleware that checks them, access/session-auth.ts.
 */

/** Where `npm run build -w @lobu/web` puts the bundle (LOBU_WEB_DIST overrides it). */
export function webDistDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.LOBU_WEB_DIST
    ? resolve(env.LOBU_WEB_DIST)
    : resolve(import.meta.dirname, "../../../web/dist");
}

export interface PagePolicy {
  /** Origins allowed to frame the page; empty = nobody. */
  frameAncestors: string[];
  /** Nonce for the few inline elements of server-rendered pages. */
  nonce?: string;
  https: boolean;
  /**
   * Where the page's form may lead besides this origin (browsers apply
   * `form-action` to the redirects after a submission too): an MCP connect
   * page's form redirects to the provider's sign-in.
   */
  formAction?: string[];
}

/** Headers for every HTML page: strict CSP, no framing (except by the origins a sign-in needs), no referrer. */
export function setPageHeaders(c: Context, policy: PagePolicy): void {
  const frame = policy.frameAncestors.length
    ? `'self' ${policy.frameAncestors.join(" ")}`
    : "'none'";
  const inline = policy.nonce ? ` 'nonce-${policy.nonce}'` : "";
  c.header(
    "content-security-policy",
    [
      "default-src 'none'",
      `script-src 'self'${inline}`,
      `style-src 'self'${inline}`,
      "img-src 'self' data:",
      "connect-src 'self'",
      "font-src 'self'",
      "manifest-src 'self'",
      "base-uri 'none'",
      `form-action 'self'${policy.formAction?.length ? ` ${policy.formAction.join(" ")}` : ""}`,
      `frame-ancestors ${frame}`,
    ].join("; "),
  );
  if (!policy.frameAncestors.length) c.header("x-frame-options", "DENY");
  setCommonHeaders(c, policy.https);
  c.header("cache-control", "no-store");
}

/** Headers every response of these routes carries (pages, assets, JSON). */
export function setCommonHeaders(c: Context, https: boolean): void {
  c.header("x-content-type-options", "nosniff");
  // Claim codes are in URLs: never let them leave in a Referer. ("same-origin", not
  // "no-referrer": under no-referrer browsers send `Origin: null` on our own POSTs.)
  c.header("referrer-policy", "same-origin");
  c.header("cross-origin-resource-policy", "same-origin");
  c.header("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=()");
  if (https) c.header("strict-transport-security", "max-age=31536000");
}

/** JSON API responses: never cached, never framed, never sniffed. */
export function apiHeaders(https: () => boolean): MiddlewareHandler {
  return async (c, next) => {
    await next();
    setCommonHeaders(c, https());
    c.header("cache-control", "no-store");
    c.header("x-frame-options", "DENY");
    c.header("content-security-policy", "default-src 'none'; frame-ancestors 'none'");
  };
}

export function newNonce(): string {
  return randomToken(16);
}

// ------------------------------------------------------------------ cookies

export interface CookieSpec {
  name: string;
  path: string;
  https: boolean;
}

export const settingsCookie = (https: boolean): CookieSpec => ({
  name: "lobu_settings",
  path: "/settings",
  https,
});
export const adminCookie = (https: boolean): CookieSpec => ({
  name: "lobu_admin",
  path: "/admin",
  https,
});

export function readSessionId(c: Context, cookie: CookieSpec): string | undefined {
  return c.req.header("x-lobu-session") || getCookie(c, cookie.name) || undefined;
}

export function setSessionCookie(c: Context, cookie: CookieSpec, id: string, ttlMs: number): void {
  setCookie(c, cookie.name, id, {
    path: cookie.path,
    httpOnly: true,
    secure: cookie.https,
    sameSite: "Lax",
    maxAge: Math.floor(ttlMs / 1000),
  });
}

export function clearSessionCookie(c: Context, cookie: CookieSpec): void {
  deleteCookie(c, cookie.name, { path: cookie.path, secure: cookie.https });
}

// ------------------------------------------------------------------ request checks

/**
 * Browsers say where a request comes from; a state-changing request from
 * another site is refused whatever cookies it carries. Clients that send no
 * Origin (curl, tests) still need the session's CSRF token.
 */
export function originAllowed(c: Context, publicUrl: string): boolean {
  const site = c.req.header("sec-fetch-site");
  if (site && site !== "same-origin" && site !== "none") return false;
  const origin = c.req.header("origin");
  if (!origin) return true;
  // An opaque origin (privacy settings, sandboxed frames): trust only the browser's own verdict.
  if (origin === "null") return site === "same-origin";
  // An address that does not parse (no public URL yet) allows nothing.
  const allowed = new Set([URL.parse(publicUrl)?.origin, URL.parse(c.req.url)?.origin]);
  allowed.delete(undefined);
  return allowed.has(origin);
}

// ------------------------------------------------------------------ the bundle

const TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
  ".json": "application/json",
  ".map": "application/json",
};
const ASSET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/;

export class WebBundle {
  readonly dir: string;
  private index: string | undefined;

  constructor(dir: string) {
    this.dir = dir;
  }

  get built(): boolean {
    return existsSync(join(this.dir, "index.html"));
  }

  /** index.html (read once; a rebuild needs a restart, like any code change). */
  indexHtml(): string | undefined {
    if (this.index) return this.index;
    if (!this.built) return undefined;
    this.index = readFileSync(join(this.dir, "index.html"), "utf8");
    return this.index;
  }

  /** A hashed asset under dist/assets, or undefined (names are checked, no traversal). */
  asset(name: string): { body: Buffer; type: string } | undefined {
    if (!ASSET_NAME.test(name) || name.includes("..")) return undefined;
    const file = join(this.dir, "assets", name);
    if (!existsSync(file)) return undefined;
    return {
      body: readFileSync(file),
      type: TYPES[extname(name)] ?? "application/octet-stream",
    };
  }
}

/** Serve the React app for a page route, or a clear page when it was never built. */
export function servePage(c: Context, bundle: WebBundle, policy: PagePolicy): Response {
  const html = bundle.indexHtml();
  if (!html) {
    const nonce = newNonce();
    setPageHeaders(c, { ...policy, nonce });
    return c.html(
      messagePage({
        nonce,
        title: "The web UI is not built",
        body: `This gateway has no web bundle in ${bundle.dir}. Build it with <code>npm run build -w @lobu/web</code> (or <code>npm ci</code> at the repository root, which builds it), then restart the gateway.`,
      }),
      503,
    );
  }
  setPageHeaders(c, policy);
  return c.html(html);
}

export function serveAsset(c: Context, bundle: WebBundle, https: boolean): Response {
  const asset = bundle.asset(c.req.param("name") ?? "");
  setCommonHeaders(c, https);
  if (!asset) return c.text("not found", 404);
  // File names carry a content hash: cache forever.
  c.header("cache-control", "public, max-age=31536000, immutable");
  c.header("content-type", asset.type);
  return c.body(new Uint8Array(asset.body));
}

// ------------------------------------------------------------------ server-rendered pages

export function escapeHtml(text: string): string {
  return text
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

const PAGE_CSS = `body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d2230}
main{max-width:30rem;margin:12vh auto;padding:1.5rem;background:#fff;border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.3rem;margin:0 0 .75rem}p{margin:.5rem 0}code{background:#eef0f4;padding:0 .25rem;border-radius:4px}
button{font:inherit;padding:.6rem 1.1rem;border:0;border-radius:8px;background:#2f5bd3;color:#fff;cursor:pointer}
button:focus-visible{outline:3px solid #9db4f0;outline-offset:2px}
@media (prefers-color-scheme:dark){body{background:#15171c;color:#e6e8ee}main{background:#20232b}code{background:#2c3039}}`;

/**
 * A small self-contained page (claim confirmation, errors). `body` is trusted
 * HTML built by the caller with escapeHtml; `nonce` allows its inline style
 * and script.
 */
export function messagePage(opts: {
  title: string;
  body: string;
  nonce?: string;
  script?: string;
}): string {
  const n = opts.nonce ? ` nonce="${opts.nonce}"` : "";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="same-origin"><link rel="icon" href="data:,"><title>${escapeHtml(opts.title)} · Lobu</title>
${opts.nonce ? `<style${n}>${PAGE_CSS}</style>` : ""}</head>
<body><main><h1>${escapeHtml(opts.title)}</h1>${opts.body}</main>
${opts.script && opts.nonce ? `<script${n}>${opts.script}</script>` : ""}</body></html>`;
}
