import { errorMessage, LobuError, LobuErrorCode, newId } from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import type { PubSub } from "../store/port.ts";
import { decodeRecord } from "../util/stored-record.ts";

/**
 * Operator commands for a sandbox that runs on another gateway (several
 * gateways sharing Redis): the gateway asked publishes the command on the
 * running gateway's channel and waits for its reply on a channel of its own.
 * Only the gateway running a sandbox may stop it, reset its volume or erase
 * it, so the command goes where the sandbox is.
 */

export const SandboxCommand = z.discriminatedUnion("op", [
  z.object({ op: z.literal("stop"), id: z.string().min(1).max(200), reason: z.string().max(200) }),
  z.object({
    op: z.literal("reset"),
    id: z.string().min(1).max(200),
    wipe: z.boolean(),
    by: z.string().max(200).optional(),
  }),
  z.object({ op: z.literal("destroy"), id: z.string().min(1).max(200) }),
]);
export type SandboxCommand = z.infer<typeof SandboxCommand>;

const Envelope = z.object({ replyTo: z.string().min(1).max(200), command: SandboxCommand });

const Reply = z.object({
  ok: z.boolean(),
  result: z.unknown().optional(),
  error: z.object({ code: LobuErrorCode, message: z.string() }).optional(),
});

const channelOf = (gateway: string) => `sandbox-control:${gateway}`;

export interface SandboxControlOptions {
  pubsub: PubSub;
  /** This gateway instance. */
  owner: string;
  log: Logger;
  /** How long to wait for the other gateway's reply (default 30 s: a reset stops the sandbox first). */
  timeoutMs?: number;
}

export class SandboxControl {
  readonly #opts: SandboxControlOptions;
  #unsubscribe: (() => Promise<void>) | undefined;

  constructor(opts: SandboxControlOptions) {
    this.#opts = opts;
  }

  /** Carry out commands other gateways send this one. */
  async serve(run: (command: SandboxCommand) => Promise<unknown>): Promise<void> {
    const { pubsub, owner, log } = this.#opts;
    this.#unsubscribe = await pubsub.subscribe(channelOf(owner), (message) => {
      const decoded = decodeRecord(Envelope, message);
      if (!decoded.ok) {
        log.warn({ reason: decoded.reason }, "unreadable sandbox command; dropped");
        return;
      }
      const { replyTo, command } = decoded.record;
      void run(command)
        .then(
          (result) => ({ ok: true, result }),
          (err: unknown) => ({
            ok: false,
            error: {
              code: err instanceof LobuError ? err.code : "internal",
              message: errorMessage(err),
            },
          }),
        )
        .then((reply) => pubsub.publish(replyTo, JSON.stringify(reply)))
        .catch((err) =>
          log.warn({ err: errorMessage(err), op: command.op }, "sandbox command not answered"),
        );
    });
  }

  /** Have `gateway` carry out `command`; its result, or its error rethrown here. */
  async ask(gateway: string, command: SandboxCommand): Promise<unknown> {
    const { pubsub, timeoutMs = 30_000 } = this.#opts;
    const replyTo = `sandbox-control-reply:${newId("rq")}`;
    let settle!: (reply: z.infer<typeof Reply> | undefined) => void;
    const replied = new Promise<z.infer<typeof Reply> | undefined>((r) => {
      settle = r;
    });
    const unsubscribe = await pubsub.subscribe(replyTo, (message) => {
      const decoded = decodeRecord(Reply, message);
      settle(decoded.ok ? decoded.record : undefined);
    });
    const timer = setTimeout(() => settle(undefined), timeoutMs);
    try {
      await pubsub.publish(channelOf(gateway), JSON.stringify({ replyTo, command }));
      const reply = await replied;
      if (!reply)
        throw new LobuError(
          "sandbox_elsewhere",
          `the gateway running sandbox ${command.id} did not answer`,
          {
            status: 504,
            hint: `It runs on ${gateway}. Try again; if that gateway is gone, its sandboxes are free again after [cluster] lease.`,
          },
        );
      if (!reply.ok)
        throw new LobuError(
          reply.error?.code === "sandbox_not_running" ? "sandbox_not_running" : "sandbox_elsewhere",
          `on ${gateway}: ${reply.error?.message ?? "failed"}`,
          { status: 409 },
        );
      return reply.result;
    } finally {
      clearTimeout(timer);
      await unsubscribe();
    }
  }

  async close(): Promise<void> {
    await this.#unsubscribe?.();
  }
}
