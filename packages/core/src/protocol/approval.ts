import { createHash } from "node:crypto";
import { inputText, visibleText } from "../visible-text.ts";

/**
 * What an approval shows, derived from the exact input that will run (never
 * from text a worker wrote about it), and the digest that binds an answer to
 * that input.
 */

/**
 * The longest display a person can be asked to approve. A longer input is
 * shown cut, flagged incomplete, and can only be denied: nobody approves what
 * they cannot read.
 */
export const MAX_APPROVAL_DISPLAY_CHARS = 262_144;
/**
 * Inputs whose JSON is longer than this are not rendered at all (only the
 * beginning of their JSON is shown, flagged incomplete): a worker cannot make
 * the gateway spend long rendering what nobody could read anyway.
 */
export const MAX_APPROVAL_INPUT_CHARS = 4 * MAX_APPROVAL_DISPLAY_CHARS;

/** JSON with object keys sorted at every level: equal values give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) {
    return `[${value.map((v) => (v === undefined || typeof v === "function" ? "null" : canonicalJson(v))).join(",")}]`;
  }
  if (value && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined && typeof obj[k] !== "function")
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

function digestOf(json: string): string {
  return `sha256:${createHash("sha256").update(json).digest("hex")}`;
}

/** `sha256:<hex>` of the input's canonical JSON: what an approval's answer is bound to. */
export function inputDigest(input: unknown): string {
  return digestOf(canonicalJson(input));
}

export interface ApprovalDisplay {
  /** The whole input, every hidden character made visible (inputText); cut only when not `complete`. */
  display: string;
  /** False when the input is too long to show (over MAX_APPROVAL_DISPLAY_CHARS): it can only be denied. */
  complete: boolean;
  /** One line naming the tool and the input's size; never a part of the input. */
  summary: string;
  inputDigest: string;
}

function plural(n: number, word: string): string {
  return `${n.toLocaleString("en")} ${word}${n === 1 ? "" : "s"}`;
}

/** The display, summary and digest of an approval for `tool` with `input`. */
export function approvalDisplay(tool: string, input: unknown): ApprovalDisplay {
  const json = canonicalJson(input);
  const inputDigest = digestOf(json);
  const tooLong = " (too long to show in full)";
  if (json.length > MAX_APPROVAL_INPUT_CHARS) {
    return {
      display: `${visibleText(json.slice(0, MAX_APPROVAL_DISPLAY_CHARS))}\n⟦… ${plural(json.length - MAX_APPROVAL_DISPLAY_CHARS, "more character")} of JSON not shown⟧`,
      complete: false,
      summary: `${tool}: ${plural(json.length, "character")} of JSON${tooLong}`,
      inputDigest,
    };
  }
  const full = inputText(input);
  const complete = full.length <= MAX_APPROVAL_DISPLAY_CHARS;
  const size = `${plural(full.split("\n").length, "line")}, ${plural(full.length, "character")}`;
  return {
    display: complete
      ? full
      : `${full.slice(0, MAX_APPROVAL_DISPLAY_CHARS)}\n⟦… ${plural(full.length - MAX_APPROVAL_DISPLAY_CHARS, "more character")} not shown⟧`,
    complete,
    summary: `${tool}: ${size}${complete ? "" : tooLong}`,
    inputDigest,
  };
}
