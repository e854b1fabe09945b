/**
 * The base URL browsers use to reach the gateway (settings links, Slack's OAuth
 * redirect, Telegram's webhook): the configured public URL, or else the
 * address the server listens on.
 *
 * It is created before anything that builds links, and settled once, by the
 * HTTP phase, when the server listens: with port 0 the port is only known
 * then, and a configured URL is not reachable before either (Telegram's
 * webhook is set once it is known, so the first delivery finds the route).
 * Everything else reads it while handling a request or a turn, which never
 * happens before that.
 */
export class PublicUrl {
  readonly #configured: string | undefined;
  #value = "";

  constructor(configured: string | undefined) {
    this.#configured = configured;
  }

  /** The URL; empty until the server listens. */
  get value(): string {
    return this.#value;
  }

  /** The server listens at `url`: the public URL is now the configured one, or else `url`. */
  listening(url: string): void {
    this.#value = (this.#configured ?? url).replace(/\/+$/, "");
  }
}
