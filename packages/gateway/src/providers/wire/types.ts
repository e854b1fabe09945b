import type { TokenUsage } from "../usage.ts";

/** A call the relay forwards: model calls (metered) and model listings, nothing else. */
export interface WireRoute {
  method: string;
  path: RegExp;
  label: string;
  /** The call makes the model generate (and cost tokens): budgets apply, output is bounded. */
  generates?: boolean;
}

/** Reads token usage out of a provider answer as it streams past. */
export interface UsageReader {
  push(chunk: Uint8Array): void;
  /** The answer's last event was read: usage is final though the connection may be open. */
  readonly ended: boolean;
  finish(): TokenUsage;
}

/** The request about to leave for the provider; `authenticate` adds the real credential. */
export interface UpstreamRequest {
  method: string;
  url: URL;
  headers: Headers;
  body: Uint8Array | undefined;
}

/** A provider's model listing: where it is, and the model ids in its answer. */
export interface WireListing {
  path: string;
  /** Headers the listing needs besides the credential. */
  headers?: Record<string, string>;
  /** Statuses that mean "key rejected" besides 401 and 403 (Gemini: 400 "API key not valid"). */
  rejects?: readonly number[];
  ids(body: unknown): string[];
}

/** The ids of an OpenAI- or Anthropic-style listing (`{ data: [{ id }] }`). */
export function dataIds(body: unknown): string[] {
  const data = (body as { data?: unknown } | null)?.data;
  return Array.isArray(data) ? data.map((m) => String((m as { id?: unknown })?.id ?? "")) : [];
}

/** What a provider entry in the registry tells its wire (see registry.ts). */
export interface WireProvider {
  id: string;
  baseUrl: string;
  /** AWS region (Bedrock) or Google Cloud location (Vertex AI). */
  region?: string;
  /** Google Cloud project (Vertex AI); else the service-account key's own. */
  project?: string;
}

/**
 * One provider wire format, as the relay sees it: which calls are relayed,
 * where the worker's placeholder travels, how the real credential is added,
 * what bounds a call's output and how usage is read from the answer.
 */
export interface ProviderWire {
  /** pi's API name for it (the worker's model config). */
  readonly api: string;
  readonly routes: readonly WireRoute[];
  /** Request headers that carry the worker's placeholder (lower-case). */
  readonly placeholderHeaders: readonly string[];
  /** Request headers dropped before forwarding: credentials and signatures of the worker. */
  readonly credentialHeaders: readonly string[];
  /** The model a call names (body field or path segment); undefined when it names none. */
  modelOf(path: string, body: Record<string, unknown>): string | undefined;
  /** Dot paths of the fields that bound a call's output; the first is set when none is given. */
  readonly outputFields: readonly string[];
  /** Dot path of a "how many answers" field that must be 1 when present. */
  readonly choicesField?: string;
  /**
   * The same call's path for another model, where the path names it (Gemini,
   * Vertex AI, Bedrock): failover to a fallback of the same wire. Without it,
   * the body's `model` is replaced.
   */
  pathWithModel?(path: string, model: string): string;
  /**
   * The cheapest call that proves a key (`lobu doctor`): the model listing,
   * no tokens. Absent where a check would need more than a listing (signed or
   * token-minted wires): doctor says the key is set, not contacted.
   */
  readonly listing?: WireListing;
  /** The upstream path for a relayed one (Vertex AI puts project and location in it). */
  upstreamPath?(path: string, provider: WireProvider, key: string): string;
  /** Adds the real credential (a header, a minted token, a signature). */
  authenticate(req: UpstreamRequest, key: string, provider: WireProvider): Promise<void>;
  usage(contentType: string): UsageReader;
  /** An error body in the provider's own shape, so the worker's SDK reports it as such. */
  errorBody(status: number, kind: string, message: string): string;
}
