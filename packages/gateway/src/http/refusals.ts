import { LobuError } from "@lobu/core";

/**
 * The refusals every surface answers with, made one way: the code and status
 * go together, and a hint says what to do instead.
 */

/** 403: the caller is known but may not do this. */
export function forbidden(message: string, hint?: string): LobuError {
  return new LobuError("forbidden", message, { status: 403, ...(hint ? { hint } : {}) });
}

/** 404: the thing named in the path does not exist (or is not the caller's to know about). */
export function notFound(message: string, hint?: string): LobuError {
  return new LobuError("not_found", message, { status: 404, ...(hint ? { hint } : {}) });
}
