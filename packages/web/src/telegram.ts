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
    } catch {}
    return fromHash;
  }
  try {
    return sessionStorage.getItem(STORE_KEY) ?? undefined;
  } catch {
    return undefined;
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
