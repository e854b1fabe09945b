import { isLobuError } from "@lobu/core";

/** Run `fn`; a refusal's hint joins its message, since the model sees only the message. */
export async function withHint<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isLobuError(err) && err.hint) throw new Error(`${err.message}. ${err.hint}`);
    throw err;
  }
}
