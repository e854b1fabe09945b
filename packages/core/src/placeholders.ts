import { randomUUID } from "node:crypto";

/** Workers only ever see these; the gateway swaps them for real values on the way out. */
export const PLACEHOLDER_PREFIX = "lobu_secret_";

export const PLACEHOLDER_PATTERN =
  /lobu_secret_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

export function newPlaceholder(): string {
  return `${PLACEHOLDER_PREFIX}${randomUUID()}`;
}

export function isPlaceholder(value: string): boolean {
  return /^lobu_secret_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(value);
}
