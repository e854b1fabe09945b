import type { IncomingHttpHeaders } from "node:http";

/**
 * Bodies for refused requests. They are read by an agent (and, through it, by a
 * person), so they say what was refused, why, and what a person can do about it.
 */

export type RefusalKind =
  /** Not in the allow list. */
  | "not_allowed"
  /** Matched a deny rule. */
  | "denied_rule"
  /** Resolved to (or is) a private/loopback/metadata address. */
  | "private_address"
  /** The sandbox is unknown or not identified. */
  | "identity"
  /** Malformed request or unsupported form. */
  | "bad_request"
  /** Too many tunnels at once. */
  | "limit"
  /** The host does not resolve or cannot be reached. */
  | "upstream";

export interface Refusal {
  status: number;
  kind: RefusalKind;
  host: string;
  reason: string;
  agentId?: string;
}

/** Stable machine-readable codes, sent as the X-Lobu-Egress header and in JSON bodies. */
const CODES: Record<RefusalKind, string> = {
  not_allowed: "egress_not_allowed",
  denied_rule: "egress_denied",
  private_address: "egress_private_address",
  identity: "egress_unknown_sandbox",
  bad_request: "egress_bad_request",
  limit: "egress_limit",
  upstream: "egress_upstream_error",
};

function hintFor(r: Refusal): string | undefined {
  const agent = r.agentId ?? "<id>";
  switch (r.kind) {
    case "not_allowed":
      return `To allow it, ask the user to allow ${r.host} in the agent's settings page, or add it to [agents.${agent}.network] allow in lobu.toml.`;
    case "denied_rule":
      return `${r.host} is explicitly denied; an operator can remove the rule from [agents.${agent}.network] deny (or [network] deny) in lobu.toml.`;
    case "private_address":
      return `The proxy never connects to loopback, private, link-local or metadata addresses. If this is an internal service the agent should reach, an operator can add its range to [network] allow_private_ranges (or [agents.${agent}.network] allow_private_ranges) in lobu.toml.`;
    case "limit":
      return "Close some connections and try again.";
    default:
      return undefined;
  }
}

function summary(r: Refusal): string {
  return `Lobu egress proxy refused the request to ${r.host || "(unknown host)"}: ${r.reason}`;
}

function refusalText(r: Refusal): string {
  const hint = hintFor(r);
  return `${summary(r)}.${hint ? `\n${hint}` : ""}\n`;
}

/**
 * The refusal on one line of printable ASCII, for the X-Lobu-Egress-Reason header
 * and the status line: clients that hide a failed CONNECT's body (curl, Python)
 * still show one or the other (`curl -v`, urllib's "Tunnel connection failed").
 */
export function refusalLine(r: Refusal): string {
  const hint = hintFor(r);
  const line = `${summary(r)}.${hint ? ` ${hint}` : ""}`;
  return line.replace(/[^\x20-\x7e]+/g, " ").slice(0, 1000);
}

function refusalJson(r: Refusal): string {
  const hint = hintFor(r);
  return `${JSON.stringify({
    error: {
      code: CODES[r.kind],
      message: summary(r),
      host: r.host,
      reason: r.reason,
      ...(hint ? { hint } : {}),
    },
  })}\n`;
}

export function wantsJson(headers: IncomingHttpHeaders): boolean {
  return /\bapplication\/(?:[\w.+-]*\+)?json\b/i.test(headers.accept ?? "");
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  407: "Proxy Authentication Required",
  421: "Misdirected Request",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  502: "Bad Gateway",
  504: "Gateway Timeout",
};

/** Reason phrase: the standard text, then what was refused and why (shown by some clients). */
export function statusText(r: Refusal): string {
  return `${STATUS_TEXT[r.status] ?? "Error"} - ${refusalLine(r)}`;
}

/** Headers and body of a refusal, JSON when the client asked for it. */
export function refusalParts(
  r: Refusal,
  json: boolean,
  extraHeaders: Record<string, string> = {},
): { headers: Record<string, string>; body: string } {
  const body = json ? refusalJson(r) : refusalText(r);
  return {
    headers: {
      "Content-Type": json ? "application/json" : "text/plain; charset=utf-8",
      "Content-Length": String(Buffer.byteLength(body)),
      "X-Lobu-Egress": CODES[r.kind],
      "X-Lobu-Egress-Reason": refusalLine(r),
      ...extraHeaders,
    },
    body,
  };
}

/** A complete raw HTTP/1.1 response (for CONNECT and parse errors, where there is no ServerResponse). */
export function rawResponse(
  r: Refusal,
  json: boolean,
  extraHeaders: Record<string, string> = {},
): string {
  const { headers, body } = refusalParts(r, json, { Connection: "close", ...extraHeaders });
  const head = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join("\r\n");
  return `HTTP/1.1 ${r.status} ${statusText(r)}\r\n${head}\r\n\r\n${body}`;
}
