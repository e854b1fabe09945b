/** What came back when an emulator POSTed to the app under test. */
export interface DeliveryResponse {
  /** HTTP status, or 0 when no response arrived (network error or timeout). */
  status: number;
  body: string;
  headers: Record<string, string>;
  timedOut: boolean;
  /** Network error message when the request failed without a response. */
  error?: string;
}

export async function postTo(
  url: string,
  body: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<DeliveryResponse> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const res = await fetch(url, {
      method: "POST",
      headers,
      body,
      redirect: "manual",
      signal: controller.signal,
    });
    const text = await res.text();
    return {
      status: res.status,
      body: text,
      headers: Object.fromEntries(res.headers.entries()),
      timedOut: false,
    };
  } catch (err) {
    const timedOut = controller.signal.aborted;
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : "";
    const message = err instanceof Error ? err.message : String(err);
    return {
      status: 0,
      body: "",
      headers: {},
      timedOut,
      error: timedOut ? `no response within ${timeoutMs} ms` : cause || message,
    };
  } finally {
    clearTimeout(timer);
  }
}
