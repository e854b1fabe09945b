/**
 * The base URL browsers use to reach the gateway (settings links, Slack's OAuth
 * redirect, Telegram's webhook): the configured public URL, or else the
 * address the server listens on.
 *
 * It is created before anything that builds links, and settled once, by the
 * HTTP phase, when the server listens: with port 0 the port is only known
 * then. Everything that reads it does so while handling a request or a turn,
 * which never happens before that.
 */
export class PublicUrl {
  /** True when a public URL was configured (the listening address does not replace it). */
  readonly configured: boolean;
  #value: string;

  constructor(configured: string | undefined) {
    this.configured = configured !== undefined;
    this.#value = withoutTrailingSlash(configured ?? "");
  }

  /** The URL; empty while an unconfigured gateway does not listen yet. */
  get value(): string {
    return this.#value;
  }

  get https(): boolean {
    return this.#value.startsWith("https:");
  }

  /** The server listens at `url`: that is the public URL unless one is configured. */
  listening(url: string): void {
    if (!this.configured) this.#value = withoutTrailingSlash(url);
  }
}

function withoutTrailingSlash(url: string): string {
  return url.replace(/\/+$/, "");
}
