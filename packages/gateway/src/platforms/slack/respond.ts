/**
 * Answers through a slash command's or a click's `response_url`: Slack shows
 * them to the person who acted (ephemeral), and unlike the HTTP response body
 * they never go back to whoever sent the request.
 */

const RESPONSE_TIMEOUT_MS = 10_000;
/** Slack's hosts for response_url (commercial and GovSlack). */
const SLACK_HOOK_HOSTS = new Set(["hooks.slack.com", "hooks.slack-gov.com"]);

/**
 * Whether the gateway may post to `url`: Slack's hooks host over HTTPS, or
 * the origin of the Web API it is configured with (an emulator, a proxy).
 * The request carrying it was signed, but the gateway still sends nothing to
 * hosts it has no business with.
 */
export function responseUrlAllowed(url: string, apiUrl: string): boolean {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return false;
  }
  if (target.protocol === "https:" && SLACK_HOOK_HOSTS.has(target.hostname)) return true;
  return target.origin === new URL(apiUrl).origin;
}

/** POST a message to a response_url; throws with Slack's reason when it is refused. */
export async function postToResponseUrl(
  url: string,
  message: Record<string, unknown>,
): Promise<void> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json; charset=utf-8" },
    body: JSON.stringify(message),
    redirect: "error",
    signal: AbortSignal.timeout(RESPONSE_TIMEOUT_MS),
  });
  const text = await res.text();
  let refused: string | undefined;
  try {
    const parsed = JSON.parse(text) as { ok?: boolean; error?: string };
    if (parsed?.ok === false) refused = parsed.error ?? "refused";
  } catch {
    // Slack answers some hooks with plain "ok".
  }
  if (!res.ok || refused)
    throw new Error(`response_url refused the message (${refused ?? `HTTP ${res.status}`})`);
}
