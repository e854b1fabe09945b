import { type Logger, PLACEHOLDER_PATTERN, redactSecrets } from "@lobu/core";
import type { AuditSink, EgressAuditRecord } from "./audit.ts";
import type { Refusal } from "./explain.ts";
import type { ForwardOutcome } from "./forwarding.ts";

/**
 * How the egress handlers write the audit trail: every record is scrubbed,
 * logged at debug level and handed to the sink; a failing sink is logged, never
 * allowed to break the request it describes.
 */

export type RecordAudit = (record: Omit<EgressAuditRecord, "at">) => void;

/** Where a request went, as every record about it says. */
export interface AuditScope {
  sandboxId: string;
  agentId: string;
  method: string;
  host: string;
  port: number;
}

/** Audit text never carries a placeholder or a known secret, wherever it came from. */
export function scrub(text: string): string {
  return redactSecrets(text.replace(PLACEHOLDER_PATTERN, "[placeholder]"));
}

export function createAuditRecorder(sink: AuditSink | undefined, logger?: Logger): RecordAudit {
  return (r) => {
    const record: EgressAuditRecord = {
      at: Date.now(),
      ...r,
      host: scrub(r.host),
      reason: scrub(r.reason),
      ...(r.notes ? { notes: r.notes.map(scrub) } : {}),
    };
    logger?.debug({ egress: record }, `egress ${record.decision}`);
    if (!sink) return;
    try {
      sink(record);
    } catch (err) {
      logger?.warn({ err }, "egress audit sink failed");
    }
  };
}

/** The record of a forwarded request: what the forwarder decided and swapped. */
export function outcomeRecord(scope: AuditScope, o: ForwardOutcome): Omit<EgressAuditRecord, "at"> {
  return {
    ...scope,
    decision: o.decision,
    reason: o.reason,
    status: o.status,
    ...(o.secrets.length ? { secrets: o.secrets } : {}),
    ...(o.unswapped ? { unswapped: o.unswapped, notes: o.notes } : {}),
  };
}

/** The record of a refusal; `sandboxId` is null when the sandbox was not identified. */
export function refusalRecord(
  r: Refusal,
  where: { sandboxId: string | null; method: string; port: number },
): Omit<EgressAuditRecord, "at"> {
  return {
    sandboxId: where.sandboxId,
    ...(r.agentId ? { agentId: r.agentId } : {}),
    method: where.method,
    host: r.host,
    port: where.port,
    decision: "denied",
    reason: r.reason,
    status: r.status,
  };
}
