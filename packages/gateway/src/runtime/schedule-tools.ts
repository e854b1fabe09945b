import { formatDuration } from "@lobu/core";
import { z } from "zod";
import type { Schedule, ScheduleStore } from "../schedules/records.ts";
import type { Scheduler } from "../schedules/scheduler.ts";
import { localTime, planSchedule, type TimingLimits } from "../schedules/timing.ts";
import type { GatewayToolDefinition, GatewayToolHost } from "./gateway-tools.ts";
import { withHint } from "./tool-errors.ts";

/**
 * The `schedule`, `list_schedules` and `cancel_schedule` gateway tools: a
 * person asks their agent for a reminder or a recurring task, and the gateway
 * (not the sandbox) keeps it and runs a turn in the same conversation at the
 * time (schedules/scheduler.ts). A turn only ever sees and cancels the
 * schedules of its own person for its own agent.
 */

export interface ScheduleToolDeps {
  schedules: Pick<ScheduleStore, "create" | "listFor" | "cancel">;
  scheduler: Pick<Scheduler, "wake">;
  limits: TimingLimits & {
    maxTextChars: number;
    /** The gateway's largest message (`gateway.max_message_bytes`): a run's message must fit. */
    maxMessageBytes: number;
  };
}

/** Room a run's message needs besides the text (`[scheduled: …]`, see scheduler.ts runText). */
const RUN_TEXT_OVERHEAD_BYTES = 256;

export function scheduleTools(d: ScheduleToolDeps) {
  const ScheduleInput = z.strictObject({
    text: z
      .string()
      .trim()
      .min(1, "say what to do or remind about")
      .max(
        d.limits.maxTextChars,
        `the text is at most ${d.limits.maxTextChars} characters; keep the instruction short`,
      )
      .describe(
        "What to do at that time, written as an instruction to yourself (e.g. 'Remind them to call Bob').",
      ),
    at: z
      .string()
      .max(64)
      .optional()
      .describe(
        "One-time, at this ISO 8601 date and time, e.g. 2026-12-24T09:00 (wall-clock time in `timezone`) or 2026-12-24T08:00Z.",
      ),
    in: z.string().max(32).optional().describe("One-time, after this delay: 30s, 10m, 2h, 1d12h."),
    cron: z
      .string()
      .max(100)
      .optional()
      .describe(
        "Recurring: a 5-field cron pattern (minute hour day-of-month month day-of-week), e.g. '0 9 * * 1-5' for 09:00 on weekdays.",
      ),
    timezone: z
      .string()
      .max(64)
      .optional()
      .describe(
        `IANA time zone for at and cron, e.g. Europe/Berlin (default ${d.limits.defaultTimezone}). Ask the person if unsure.`,
      ),
  });

  const schedule: GatewayToolDefinition<typeof ScheduleInput> = {
    name: "schedule",
    description:
      "Schedule a turn in this conversation later: a one-time reminder (`at` or `in`) or a recurring task (`cron`). At that time you get a message starting with [scheduled: ...] and do what `text` says; your answer is posted in this thread. Give exactly one of at, in, cron.",
    input: ScheduleInput,
    defaultPolicy: "allow",
    // A run is the person's own message later: others' words in the context may not set one unasked.
    askWhenOthersWrote: true,
    async execute(input, ctx) {
      if (Buffer.byteLength(input.text) + RUN_TEXT_OVERHEAD_BYTES > d.limits.maxMessageBytes)
        throw new Error(
          `the text is too long for a message on this gateway (at most ${d.limits.maxMessageBytes - RUN_TEXT_OVERHEAD_BYTES} bytes); keep the instruction short`,
        );
      const now = Date.now();
      const plan = await withHint(() => planSchedule(input, d.limits, now));
      // A run setting its next one "in 1s" would repeat faster than a cron may.
      if (ctx.scheduleId && plan.kind === "once" && plan.nextRunAt - now < d.limits.minIntervalMs)
        throw new Error(
          `this turn is a run of schedule ${ctx.scheduleId}; a schedule set from it must be at least ${formatDuration(d.limits.minIntervalMs)} ahead (schedules.min_interval), so schedules cannot repeat faster than recurring ones may. For a repeating task, use cron`,
        );
      const created = await withHint(() =>
        d.schedules.create({ agentId: ctx.agentId, origin: ctx.origin, text: input.text, plan }),
      );
      d.scheduler.wake();
      const note = plan.kind === "once" && plan.note ? `; ${plan.note}` : "";
      return `Scheduled ${created.id}: ${describe(created)}${note}.`;
    },
  };

  const ListInput = z.strictObject({});
  const list: GatewayToolDefinition<typeof ListInput> = {
    name: "list_schedules",
    description:
      "List the person's pending schedules and reminders with this agent (all their conversations), soonest first.",
    input: ListInput,
    defaultPolicy: "allow",
    async execute(_input, ctx) {
      const all = await d.schedules.listFor(ctx.agentId, ctx.userKey);
      if (all.length === 0) return "No schedules.";
      return all.map((s) => `- ${s.id}: ${describe(s)} — ${JSON.stringify(s.text)}`).join("\n");
    },
  };

  const CancelInput = z.strictObject({
    id: z.string().max(64).describe("The schedule's id (sch_...), from list_schedules."),
  });
  const cancel: GatewayToolDefinition<typeof CancelInput> = {
    name: "cancel_schedule",
    description: "Cancel one of the person's schedules by id.",
    input: CancelInput,
    defaultPolicy: "allow",
    // Cancels the person's own reminder: not at the word of someone else's message.
    askWhenOthersWrote: true,
    async execute(input, ctx) {
      const gone = await d.schedules.cancel(ctx.agentId, ctx.userKey, input.id);
      if (!gone) throw new Error(`there is no schedule ${input.id}; list_schedules shows them`);
      return `Cancelled ${input.id}.`;
    },
  };

  return { schedule, list, cancel };
}

/** Register the schedule tools; returns a function that removes them. */
export function registerScheduleTools(host: GatewayToolHost, d: ScheduleToolDeps): () => void {
  const tools = scheduleTools(d);
  const undo = [
    host.register(tools.schedule),
    host.register(tools.list),
    host.register(tools.cancel),
  ];
  return () => {
    for (const u of undo) u();
  };
}

function describe(s: Schedule): string {
  const next = `${localTime(s.nextRunAt, s.timezone)} ${s.timezone}`;
  return s.kind === "cron" ? `every "${s.cron}", next ${next}` : `once at ${next}`;
}
