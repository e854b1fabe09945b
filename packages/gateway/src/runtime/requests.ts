import type { RequestAnswer } from "@lobu/core";
import type { Logger } from "pino";
import { userKeyOf } from "../domain/origin.ts";
import type { Answerer, PendingRequest } from "../domain/requests.ts";
import type { Store } from "../store/port.ts";

const CHANNEL = "answers";
const key = (id: string) => `req:${id}`;

/**
 * Questions, approvals and capability requests waiting for a person. Answers
 * may arrive at any gateway (a button click webhook); they travel over pub/sub
 * to the gateway whose worker is waiting. Each request is answered once.
 */
export class RequestRegistry {
  private readonly store: Store;
  private readonly log: Logger;
  private unsubscribe: (() => Promise<void>) | undefined;

  constructor(store: Store, log: Logger) {
    this.store = store;
    this.log = log;
  }

  async register(
    rec: Omit<PendingRequest, "status" | "createdAt">,
    ttlMs: number,
  ): Promise<PendingRequest> {
    const full: PendingRequest = { ...rec, status: "pending", createdAt: Date.now() };
    await this.store.kv.set(key(rec.requestId), JSON.stringify(full), {
      ttlMs: ttlMs + 86_400_000,
    });
    return full;
  }

  async get(requestId: string): Promise<PendingRequest | null> {
    const raw = await this.store.kv.get(key(requestId));
    return raw ? (JSON.parse(raw) as PendingRequest) : null;
  }

  /**
   * Record the answer (first one wins) and forward it to the waiting worker.
   * Only the person whose message started the turn (or an admin) may answer.
   */
  async answer(
    requestId: string,
    answer: RequestAnswer,
    by: Answerer,
  ): Promise<
    { ok: true; request: PendingRequest } | { ok: false; reason: string; status: number }
  > {
    const raw = await this.store.kv.get(key(requestId));
    if (!raw) return { ok: false, reason: "unknown or expired request", status: 404 };
    const request = JSON.parse(raw) as PendingRequest;
    if (!by.admin && by.userKey !== userKeyOf(request.origin)) {
      return {
        ok: false,
        reason: "only the person who asked the agent can answer this",
        status: 403,
      };
    }
    if (request.status !== "pending")
      return { ok: false, reason: `request already ${request.status}`, status: 409 };
    // An approval's answer is bound to the input the person was shown; nobody else supplies the digest.
    const { inputDigest: _claimed, ...given } = answer;
    const shown = request.event.type === "approval_request" ? request.event.inputDigest : undefined;
    const next: PendingRequest = {
      ...request,
      status: "answered",
      answer: { ...given, by: by.label, ...(shown ? { inputDigest: shown } : {}) },
      answeredAt: Date.now(),
    };
    if (
      !(await this.store.kv.compareAndSet(key(requestId), raw, JSON.stringify(next), {
        ttlMs: 86_400_000,
      }))
    ) {
      return { ok: false, reason: "request already answered", status: 409 };
    }
    await this.store.pubsub.publish(
      CHANNEL,
      JSON.stringify({ sandboxId: request.sandboxId, requestId, answer: next.answer }),
    );
    return { ok: true, request: next };
  }

  /**
   * Mark a request nobody answered as expired (its wait timed out or its turn
   * ended), so a late click is refused. Returns the request when this call
   * expired it, null when it was answered (or expired) first.
   */
  async expire(requestId: string): Promise<PendingRequest | null> {
    const raw = await this.store.kv.get(key(requestId));
    if (!raw) return null;
    const request = JSON.parse(raw) as PendingRequest;
    if (request.status !== "pending") return null;
    const next: PendingRequest = { ...request, status: "expired", answeredAt: Date.now() };
    const swapped = await this.store.kv.compareAndSet(key(requestId), raw, JSON.stringify(next), {
      ttlMs: 86_400_000,
    });
    return swapped ? next : null;
  }

  /** Deliver answers for sandboxes this gateway hosts. */
  async start(
    deliver: (sandboxId: string, requestId: string, answer: RequestAnswer) => void,
  ): Promise<void> {
    this.unsubscribe = await this.store.pubsub.subscribe(CHANNEL, (message) => {
      try {
        const { sandboxId, requestId, answer } = JSON.parse(message) as {
          sandboxId: string;
          requestId: string;
          answer: RequestAnswer;
        };
        deliver(sandboxId, requestId, answer);
      } catch (err) {
        this.log.warn({ err }, "bad answer message");
      }
    });
  }

  async stop(): Promise<void> {
    await this.unsubscribe?.();
  }
}
