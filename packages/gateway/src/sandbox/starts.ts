import { LobuError } from "@lobu/core";
import { checkSandboxId } from "./env.ts";

/**
 * Start sandbox `id` through `start`, refusing while the driver shuts down
 * (503) or while the id runs or starts already (409). While it starts it is
 * in `starting`, where a stop or the driver's close waits for it.
 */
export async function guardedStart<T>(
  id: string,
  state: {
    closed: boolean;
    running: boolean;
    starting: Map<string, Promise<unknown>>;
    /** What the id names, in the refusal ("sandbox" unless a pool). */
    kind?: string;
  },
  start: () => Promise<T>,
): Promise<T> {
  checkSandboxId(id);
  if (state.closed)
    throw new LobuError("sandbox_driver_closed", "the gateway is shutting down", {
      status: 503,
      hint: "Send the message again once the gateway is back.",
    });
  if (state.running || state.starting.has(id))
    throw new LobuError("sandbox_running", `${state.kind ?? "sandbox"} ${id} is already running`, {
      status: 409,
      hint: "Stop it first.",
    });
  const starting = start();
  state.starting.set(id, starting);
  try {
    return await starting;
  } finally {
    state.starting.delete(id);
  }
}
