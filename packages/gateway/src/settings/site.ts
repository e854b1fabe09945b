import type { SettingsSignIn } from "../http/sign-in.ts";
import { type CookieSpec, type PagePolicy, settingsCookie } from "../http/web.ts";

/**
 * How the settings pages present themselves: over HTTPS or not (from the
 * public URL, read per request: it is known once the gateway listens), with
 * which session cookie, and who may show them in a frame.
 */
export interface SettingsSite {
  readonly publicUrl: string;
  readonly https: boolean;
  readonly cookie: CookieSpec;
  /** Headers policy of a page (with a nonce for a server-rendered one's inline parts). */
  page(nonce?: string): PagePolicy;
}

export function settingsSite(d: {
  /** Read while handling a request (the gateway listens by then). */
  readonly publicUrl: string;
  signIns: readonly SettingsSignIn[];
}): SettingsSite {
  // A platform whose app shows these pages in a frame (Telegram Web) may frame them; nobody else.
  const frameAncestors = d.signIns.flatMap((signIn) => signIn.frameAncestors);
  const https = () => d.publicUrl.startsWith("https:");
  return {
    get publicUrl() {
      return d.publicUrl;
    },
    get https() {
      return https();
    },
    get cookie() {
      return settingsCookie(https());
    },
    page: (nonce) => ({ frameAncestors, https: https(), ...(nonce ? { nonce } : {}) }),
  };
}
