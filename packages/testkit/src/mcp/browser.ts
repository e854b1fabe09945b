/**
 * A person's browser, as far as an OAuth sign-in needs one: it follows
 * redirects itself (so each hop is visible), keeps cookies per origin, and
 * submits the forms it lands on — the gateway's "Continue" and the
 * authorization server's sign-in and consent, as `account`.
 */
export class Browser {
  readonly #jar = new Map<string, Map<string, string>>();
  /** Every URL visited, in order. */
  readonly visited: string[] = [];

  /**
   * Open `url` and go where it leads; the last page's response (its body
   * unread). With `stopBefore`, a redirect to a URL starting with it is
   * returned instead of followed (a test can then tamper with it).
   */
  async open(
    url: string,
    opts: { account?: string; maxSteps?: number; stopBefore?: string } = {},
  ): Promise<Response> {
    let next: { url: string; method: string; body?: URLSearchParams } = { url, method: "GET" };
    for (let step = 0; step < (opts.maxSteps ?? 30); step++) {
      const res = await this.fetch(next.url, next.method, next.body);
      const location = res.headers.get("location");
      if (res.status >= 300 && res.status < 400 && location) {
        const target = new URL(location, next.url).href;
        if (opts.stopBefore && target.startsWith(opts.stopBefore)) return res;
        await res.body?.cancel();
        next = { url: target, method: "GET" };
        continue;
      }
      const type = res.headers.get("content-type") ?? "";
      if (res.status !== 200 || !type.includes("html")) return res;
      const html = await res.text();
      const form = /<form[^>]*method="post"[^>]*>/i.exec(html);
      if (!form) return new Response(html, { status: res.status, headers: res.headers });
      const action = /action="([^"]*)"/i.exec(form[0])?.[1];
      const body = new URLSearchParams();
      if (/name="account"/.test(html)) body.set("account", opts.account ?? "someone");
      next = { url: new URL(action ?? next.url, next.url).href, method: "POST", body };
    }
    throw new Error(`too many steps from ${url}`);
  }

  async fetch(url: string, method = "GET", body?: URLSearchParams): Promise<Response> {
    this.visited.push(`${method} ${url}`);
    const origin = new URL(url).origin;
    const cookies = this.#jar.get(origin);
    const headers: Record<string, string> = {};
    if (cookies?.size) headers.cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join("; ");
    if (body) headers["content-type"] = "application/x-www-form-urlencoded";
    const res = await fetch(url, {
      method,
      headers,
      redirect: "manual",
      ...(body ? { body } : {}),
    });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const eq = pair?.indexOf("=") ?? -1;
      if (!pair || eq < 1) continue;
      const jar = this.#jar.get(origin) ?? new Map<string, string>();
      const value = pair.slice(eq + 1).trim();
      if (value === "" || /max-age=0/i.test(line)) jar.delete(pair.slice(0, eq).trim());
      else jar.set(pair.slice(0, eq).trim(), value);
      this.#jar.set(origin, jar);
    }
    return res;
  }
}
