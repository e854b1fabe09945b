import { bestEffort } from "@lobu/core/best-effort";

/**
 * Telegram Mini App support without loading Telegram's script: the launch
 * parameters arrive in the URL fragment (`#tgWebAppData=...`), and readiness is
 * reported with the documented postEvent bridge.
 */

const STORE_KEY = "lobu.tgWebAppData";

/** The signed initData when the page runs as a Mini App, else undefined. */
export function telegramInitData(): string | undefined {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const fromHash = params.get("tgWebAppData");
  if (fromHash) {
    try {
      sessionStorage.setItem(STORE_KEY, fromHash);
    } catch (err) {
      bestEffort(
        console,
        "Telegram launch data not kept (storage blocked): a reload may need the Mini App opened again",
      )(err);
    }
    return fromHash;
  }
  try {
    return sessionStorage.getItem(STORE_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

const SESSION_KEY = "lobu.tgSession";

export interface TelegramSession {
  token: string;
  csrf: string;
}

let pending: { initData: string; session: Promise<TelegramSession> } | undefined;

/**
 * The session of this Mini App launch. The gateway accepts an initData once,
 * so `login` runs once per initData: a reload (or React running an effect
 * twice) goes on with the session it opened, kept for this tab only.
 */
export function telegramSession(
  initData: string,
  login: () => Promise<TelegramSession>,
): Promise<TelegramSession> {
  const saved = savedSession(initData);
  if (saved) return Promise.resolve(saved);
  if (pending?.initData !== initData) {
    const session = login().then((s) => {
      saveSession(initData, s);
      return s;
    });
    // A failed login may be tried again (it used nothing up).
    session.catch(() => {
      if (pending?.session === session) pending = undefined;
    });
    pending = { initData, session };
  }
  return pending.session;
}

function savedSession(initData: string): TelegramSession | undefined {
  try {
    const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null") as
      | (TelegramSession & { initData: string })
      | null;
    return saved?.initData === initData ? { token: saved.token, csrf: saved.csrf } : undefined;
  } catch {
    return undefined;
  }
}

function saveSession(initData: string, session: TelegramSession): void {
  try {
    sessionStorage.setItem(
      SESSION_KEY,
      JSON.stringify({ initData, token: session.token, csrf: session.csrf }),
    );
  } catch (err) {
    bestEffort(
      console,
      "Telegram session not kept (storage blocked): a reload needs the Mini App opened again",
    )(err);
  }
}

type Bridge = { postEvent(type: string, data: string): void };

/** Tell Telegram the page is ready (hides its loading placeholder). */
export function telegramReady(): void {
  postEvent("web_app_ready", {});
  postEvent("web_app_expand", {});
}

function postEvent(type: string, data: Record<string, unknown>): void {
  const w = window as unknown as { TelegramWebviewProxy?: Bridge };
  try {
    if (w.TelegramWebviewProxy) {
      w.TelegramWebviewProxy.postEvent(type, JSON.stringify(data));
    } else if (window.parent !== window) {
      window.parent.postMessage(
        JSON.stringify({ eventType: type, eventData: data }),
        "https://web.telegram.org",
      );
    }
  } catch {
    // Not inside Telegram after all.
  }
}
