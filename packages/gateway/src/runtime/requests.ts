import { RequestAnswer } from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import { userKeyOf } from "../domain/origin.ts";
import { type Answerer, PendingRequest } from "../domain/requests.ts";
import type { Store } from "../store/port.ts";
import { decodeRecord, readRecord } from "../util/stored-record.ts";

const CHANNEL = "answers";
export const requestKey = (id: string) => `req:${id}`;
const key = requestKey;
/**
 * The approval asked for one tool input in one message (`<message id>:<input digest>`), so a
 * re-run of the message (its gateway died) finds the approval still waiting on the person.
 */
const approvalKey = (messageId: string, inputDigest: string) =>
  `req-approval:${messageId}:${inputDigest}`;

/** What travels over pub/sub to the gateway whose worker waits for an answer. */
const AnswerMessage = z.object({
  sandboxId: z.string(),
  requestId: z.string(),
  answer: RequestAnswer,
});
type AnswerMessage = z.infer<typeof AnswerMessage>;

type AnswerOutcome =
  | { ok: true; request: PendingRequest & { answer: RequestAnswer } }
  | { ok: false; reason: string; status: number };

const UNKNOWN: AnswerOutcome = { ok: false, reason: "unknown or expired request", status: 404 };

/**
 * `request` with `answer` recorded, or why `by` may not answer it. An
 * approval's answer is bound to the input the person was shown; nobody else
 * supplies the digest.
 */
function answered(request: PendingRequest, answer: RequestAnswer, by: Answerer): AnswerOutcome {
  if (!by.admin && by.userKey !== userKeyOf(request.origin)) {
    return {
      ok: false,
      reason: "only the person who asked the agent can answer this",
      status: 403,
    };
  }
  if (request.status !== "pending")
    return { ok: false, reason: `request already ${request.status}`, status: 409 };
  const { inputDigest: _claimed, ...given } = answer;
  const shown = request.event.type === "approval_request" ? request.event.inputDigest : undefined;
  return {
    ok: true,
    request: {
      ...request,
      status: "answered",
      answer: { ...given, by: by.label, ...(shown ? { inputDigest: shown } : {}) },
      answeredAt: Date.now(),
    },
  };
}

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
    if (rec.event.type === "approval_request" && rec.event.inputDigest)
      await this.store.kv.set(approvalKey(rec.messageId, rec.event.inputDigest), rec.requestId, {
        ttlMs: ttlMs + 86_400_000,
      });
    return full;
  }

  /**
   * The approval an earlier attempt of this message asked for exactly this tool and input,
   * still waiting for the person (its gateway died mid-turn, so nobody expired it): the re-run
   * asks through it instead of asking again, so the card the person already has — answered
   * on any gateway — resolves the re-run. Null when there is none (a new request is asked).
   */
  async reusableApproval(
    messageId: string,
    turnId: string,
    tool: string,
    inputDigest: string,
  ): Promise<PendingRequest | null> {
    const requestId = await this.store.kv.get(approvalKey(messageId, inputDigest));
    if (!requestId) return null;
    const request = await this.get(requestId);
    if (
      request?.status !== "pending" ||
      request.messageId !== messageId ||
      // Only an earlier attempt's: two identical calls of one turn are asked apart.
      request.turnId === undefined ||
      request.turnId === turnId ||
      request.event.type !== "approval_request" ||
      request.event.tool !== tool ||
      request.event.inputDigest !== inputDigest
    )
      return null;
    return request;
  }

  async get(requestId: string): Promise<PendingRequest | null> {
    const raw = await this.store.kv.get(key(requestId));
    return raw === null ? null : (this.#decode(requestId, raw) ?? null);
  }

  /**
   * Record the answer (first one wins) and forward it to the waiting worker.
   * Only the person whose message started the turn (or an admin) may answer.
   * An unreadable request record is never answered: it reads as unknown.
   */
  async answer(requestId: string, answer: RequestAnswer, by: Answerer): Promise<AnswerOutcome> {
    // Set by the last run of the update (it runs again when it lost a race).
    let outcome = UNKNOWN as AnswerOutcome;
    await this.store.kv.update(
      key(requestId),
      (raw) => {
        const request = raw === null ? undefined : this.#decode(requestId, raw);
        outcome = request ? answered(request, answer, by) : UNKNOWN;
        return outcome.ok ? JSON.stringify(outcome.request) : undefined;
      },
      { ttlMs: 86_400_000 },
    );
    if (!outcome.ok) return outcome;
    const { request } = outcome;
    await this.store.pubsub.publish(
      CHANNEL,
      JSON.stringify({
        sandboxId: request.sandboxId,
        requestId,
        answer: request.answer,
      } satisfies AnswerMessage),
    );
    return outcome;
  }

  /**
   * Mark a request nobody answered as expired (its wait timed out or its turn
   * ended), so a late click is refused. Returns the request when this call
   * expired it, null when it was answered (or expired) first.
   */
  async expire(requestId: string): Promise<PendingRequest | null> {
    let expired = null as PendingRequest | null;
    await this.store.kv.update(
      key(requestId),
      (raw) => {
        const request = raw === null ? undefined : this.#decode(requestId, raw);
        expired =
          request?.status === "pending"
            ? { ...request, status: "expired", answeredAt: Date.now() }
            : null;
        return expired ? JSON.stringify(expired) : undefined;
      },
      { ttlMs: 86_400_000 },
    );
    return expired;
  }

  #decode(requestId: string, raw: string): PendingRequest | undefined {
    return readRecord(
      PendingRequest,
      raw,
      { record: "pending request", key: key(requestId) },
      this.log,
      "it reads as unknown and cannot be answered",
    );
  }

  /** Deliver answers for sandboxes this gateway hosts. */
  async start(
    deliver: (sandboxId: string, requestId: string, answer: RequestAnswer) => void,
  ): Promise<void> {
    this.unsubscribe = await this.store.pubsub.subscribe(CHANNEL, (message) => {
      try {
        const decoded = decodeRecord(AnswerMessage, message);
        if (!decoded.ok) {
          this.log.warn({ reason: decoded.reason }, "unreadable answer message; dropped");
          return;
        }
        const { sandboxId, requestId, answer } = decoded.record;
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
