/** A small JSON client for the gateway's session APIs (cookie or header session, CSRF header). */

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly hint: string | undefined;

  constructor(status: number, code: string, message: string, hint?: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.hint = hint;
  }

  /** The message plus what to do, for people. */
  get text(): string {
    return this.hint ? `${this.message}. ${this.hint}` : this.message;
  }
}

export interface Client {
  get<T>(path: string): Promise<T>;
  send<T>(method: "POST" | "PUT" | "DELETE", path: string, body?: unknown): Promise<T>;
  setCsrf(token: string): void;
  /** Use a header session (Telegram Mini App inside a frame, where cookies may be refused). */
  setSession(token: string): void;
}

export function createClient(base: string): Client {
  let csrf = "";
  let session: string | undefined;
  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (method !== "GET" && csrf) headers["x-csrf-token"] = csrf;
    if (session) headers["x-lobu-session"] = session;
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, {
        method,
        headers,
        credentials: "same-origin",
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch {
      throw new ApiError(0, "network", "Cannot reach the gateway", "Check your connection");
    }
    const data = (await res.json().catch(() => ({}))) as {
      error?: { code?: string; message?: string; hint?: string };
    };
    if (!res.ok) {
      throw new ApiError(
        res.status,
        data.error?.code ?? "http_error",
        data.error?.message ?? `Request failed (${res.status})`,
        data.error?.hint,
      );
    }
    return data as T;
  }
  return {
    get: (path) => call("GET", path),
    send: (method, path, body) => call(method, path, body ?? {}),
    setCsrf: (token) => {
      csrf = token;
    },
    setSession: (token) => {
      session = token;
    },
  };
}

export function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.text;
  return err instanceof Error ? err.message : String(err);
}

/** Logged when the gateway does not confirm a logout: the page signs out all the same. */
export const LOGOUT_UNCONFIRMED =
  "logout not confirmed by the gateway: the session stays valid until it expires";
