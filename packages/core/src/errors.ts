/**
 * One error type for everything a user or operator can act on: a stable code for
 * programs, a message for people, an HTTP status for the API and a hint that says
 * what to do next.
 */
export class LobuError extends Error {
  readonly code: string;
  readonly status: number;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: string,
    message: string,
    opts: {
      status?: number;
      hint?: string;
      details?: Record<string, unknown>;
      cause?: unknown;
    } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "LobuError";
    this.code = code;
    this.status = opts.status ?? 400;
    this.hint = opts.hint;
    this.details = opts.details;
  }

  toJSON(): {
    error: { code: string; message: string; hint?: string; details?: Record<string, unknown> };
  } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.hint ? { hint: this.hint } : {}),
        ...(this.details ? { details: this.details } : {}),
      },
    };
  }
}

export function isLobuError(err: unknown): err is LobuError {
  return err instanceof LobuError;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
