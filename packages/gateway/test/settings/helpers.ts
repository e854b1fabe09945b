import type { GatewayProcess } from "@lobu/testkit";

/**
 * A person's side of the settings page without a browser: redeem a claim link
 * like the page's form does, then call the settings API with the session
 * cookie and CSRF token. (Browser tests live in packages/web/test.)
 */
export interface SettingsSession {
  cookie: string;
  csrf: string;
  /** Where the claim redirected (the page's address, with the request to answer). */
  landing: string;
  /** Call /settings/api/<path> with the session (CSRF header on changes unless `csrf: false`). */
  call(
    method: string,
    path: string,
    body?: unknown,
    opts?: { csrf?: boolean; headers?: Record<string, string> },
  ): Promise<Response>;
}

/** A one-time settings link for an API-channel user. */
export async function apiSettingsLink(
  gw: Pick<GatewayProcess, "api">,
  user: string,
  extra: Record<string, string> = {},
): Promise<string> {
  const res = await gw.api("/api/v1/settings-links", {
    method: "POST",
    body: JSON.stringify({ user, ...extra }),
  });
  if (res.status !== 201) throw new Error(`settings link: HTTP ${res.status} ${await res.text()}`);
  return ((await res.json()) as { url: string }).url;
}

/** POST the claim form (what the confirmation page does); returns the raw response. */
export function postClaim(url: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body: "fragment=",
  });
}

export function sessionCookieOf(res: Response): string | undefined {
  const set = res.headers.getSetCookie().find((c) => c.startsWith("lobu_settings="));
  return set?.split(";")[0];
}

/** Redeem a claim link into a session. */
export async function openSettings(
  gw: Pick<GatewayProcess, "url">,
  url: string,
): Promise<SettingsSession> {
  const res = await postClaim(url);
  const cookie = sessionCookieOf(res);
  if (res.status !== 303 || !cookie) throw new Error(`claim failed: HTTP ${res.status}`);
  const info = await fetch(`${gw.url}/settings/api/session`, { headers: { cookie } });
  const { csrf } = (await info.json()) as { csrf: string };
  return {
    cookie,
    csrf,
    landing: res.headers.get("location") ?? "",
    call(method, path, body, opts = {}) {
      return fetch(`${gw.url}/settings/api${path}`, {
        method,
        headers: {
          cookie,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          ...(opts.csrf === false ? {} : { "x-csrf-token": csrf }),
          ...opts.headers,
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    },
  };
}

/** Read an SSE response event by event (unlike collectEvents, which waits for the end). */
export function eventReader(res: Response) {
  if (!res.body) throw new Error(`no body (HTTP ${res.status})`);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const seen: Record<string, unknown>[] = [];
  async function next(): Promise<Record<string, unknown> | undefined> {
    for (;;) {
      const sep = buffer.indexOf("\n\n");
      if (sep !== -1) {
        const block = buffer.slice(0, sep);
        buffer = buffer.slice(sep + 2);
        const data = block
          .split("\n")
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).trimStart())
          .join("");
        if (!data) continue;
        const event = JSON.parse(data) as Record<string, unknown>;
        seen.push(event);
        return event;
      }
      const { value, done } = await reader.read();
      if (done) return undefined;
      buffer += decoder.decode(value, { stream: true });
    }
  }
  return {
    seen,
    /** The next event of `type` (events before it are kept in `seen`). */
    async until(type: string): Promise<Record<string, unknown>> {
      for (;;) {
        const event = await next();
        if (!event) throw new Error(`stream ended before a ${type} event: ${JSON.stringify(seen)}`);
        if (event.type === type) return event;
      }
    },
    /** Everything up to the turn's final event. */
    async rest(): Promise<Record<string, unknown>[]> {
      for (;;) {
        const event = await next();
        if (!event || event.type === "done" || event.type === "error") return seen;
      }
    },
  };
}
