import { ERROR_CODES, type LobuErrorCode } from "./error-codes.ts";

/** The JSON body of every error answer: `{ error: { code, message, hint?, details? } }`. */
export interface ErrorBody {
  error: {
    code: LobuErrorCode;
    message: string;
    hint?: string;
    details?: Record<string, unknown>;
  };
}

/**
 * One error type for everything a user or operator can act on: a stable code for
 * programs, a message for people, an HTTP status for the API and a hint that says
 * what to do next. The status defaults to the code's (ERROR_CODES).
 */
export class LobuError extends Error {
  readonly code: LobuErrorCode;
  readonly status: number;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: LobuErrorCode,
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
    this.status = opts.status ?? ERROR_CODES[code].status;
    this.hint = opts.hint;
    this.details = opts.details;
  }

  toJSON(): ErrorBody {
    return errorBody(this.code, this.message, {
      ...(this.hint ? { hint: this.hint } : {}),
      ...(this.details ? { details: this.details } : {}),
    });
  }
}

/** An error answer's body, for the places that answer instead of throwing (webhooks, fallbacks). */
export function errorBody(
  code: LobuErrorCode,
  message: string,
  extra: { hint?: string; details?: Record<string, unknown> } = {},
): ErrorBody {
  return { error: { code, message, ...extra } };
}

export function isLobuError(err: unknown): err is LobuError {
  return err instanceof LobuError;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
