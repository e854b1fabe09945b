/**
 * Failures that must not stop the caller, handled one way everywhere.
 *
 * - `bestEffort`: the failure handler of a step the caller survives (a
 *   bookkeeping write, a cleanup, one part of a shutdown). Its failure is
 *   never silent: it is logged with what it cost and the error.
 * - `ignoreGone`: the one failure that means nothing, "it is already gone"
 *   (a file removed, a process exited, a peer hung up). Every other error
 *   still propagates.
 * - `settled`: waiting for work that someone else awaits too; its failure is
 *   theirs to report (lock chains, "wait for the start in flight").
 *
 * This module has no dependencies, so the browser bundle can use it
 * (`@lobu/core/best-effort`).
 */

/** Where best-effort failures are written: pino's `Logger` fits, and so does `console`. */
export interface FailureLog {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export type FailureLevel = "debug" | "warn" | "error";

export interface BestEffortOptions {
  /**
   * `warn` (default): something was lost or left behind that an operator may
   * want to know about. `error`: a record that should exist does not.
   * `debug`: a cosmetic loss nobody acts on.
   */
  level?: FailureLevel;
}

/**
 * The failure handler of a best-effort step, for `.catch(...)`:
 *
 *     void records.patch(id, fn).catch(bestEffort(log, "sandbox health not recorded", { sandboxId }));
 *
 * A failure is logged at `level` as `lost` (say in words what it cost:
 * "sandbox health not recorded", "temporary directory left behind") with
 * `context` (which sandbox, key, path) and the error's message; the promise
 * then resolves, so the caller goes on. Usable in a `catch (err)` block too:
 * `bestEffort(log, "…")(err)`.
 */
export function bestEffort(
  log: FailureLog,
  lost: string,
  context: Record<string, unknown> = {},
  opts: BestEffortOptions = {},
): (err: unknown) => void {
  return (err) => log[opts.level ?? "warn"]({ ...context, err: describeError(err) }, lost);
}

/**
 * Error codes that mean the thing acted on no longer exists: a path
 * (`ENOENT`), a process (`ESRCH`), the other end of a pipe or socket
 * (`EPIPE`, `ECONNRESET`, `ENOTCONN`), a server or stream already closed.
 * Removing, signalling or closing such a thing has nothing left to do.
 */
const GONE = new Set([
  "ENOENT",
  "ESRCH",
  "EPIPE",
  "ECONNRESET",
  "ENOTCONN",
  "ERR_SERVER_NOT_RUNNING",
  "ERR_STREAM_DESTROYED",
]);

/** Whether `err` says the thing acted on is already gone (see GONE). */
export function isGone(err: unknown): boolean {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === "string" && GONE.has(code);
}

/**
 * For `.catch(ignoreGone)` and `catch (err) { ignoreGone(err) }`: swallows an
 * "already gone" error (removing what was removed, closing what was closed)
 * and rethrows every other one.
 */
export function ignoreGone(err: unknown): void {
  if (!isGone(err)) throw err;
}

/**
 * Resolves once `work` has finished, whichever way. Only for work whose
 * failure its own awaiter reports: the tail of a lock chain (the caller of the
 * queued step gets its error), waiting for a start in flight before stopping
 * (the starter gets its error).
 */
export function settled(work: PromiseLike<unknown> | undefined): Promise<void> {
  return Promise.resolve(work).then(
    () => undefined,
    () => undefined,
  );
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && !err.message.includes(code)
    ? `${err.message} (${code})`
    : err.message;
}
