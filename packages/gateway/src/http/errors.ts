import { errorBody, isLobuError, LobuError } from "@lobu/core";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Logger } from "pino";
import { type ZodType, z } from "zod";

/** Parse and validate a JSON body; malformed JSON and schema errors become clear 400s. */
export async function jsonBody<T extends ZodType>(c: Context, schema: T): Promise<z.infer<T>> {
  let raw: unknown;
  try {
    raw = JSON.parse(await c.req.text());
  } catch {
    throw new LobuError("malformed_json", "request body is not valid JSON", {
      hint: "Send a JSON object with Content-Type: application/json.",
    });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new LobuError("invalid_request", "request body does not match the schema", {
      details: {
        issues: parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
      },
      hint: "See docs/openapi.yaml for the request format.",
    });
  }
  return parsed.data;
}

export function errorResponse(err: unknown, c: Context, log: Logger): Response {
  if (isLobuError(err)) {
    // A 429 says when to come back.
    const retryAfter = err.details?.retryAfterSec;
    if (err.status === 429 && typeof retryAfter === "number")
      c.header("Retry-After", String(retryAfter));
    return c.json(err.toJSON(), err.status as ContentfulStatusCode);
  }
  if (err instanceof HTTPException) {
    const status = err.status;
    const code =
      status === 413 ? "payload_too_large" : status === 401 ? "unauthorized" : "http_error";
    return c.json(errorBody(code, err.message || "request failed"), status);
  }
  if (err instanceof z.ZodError) {
    return c.json(errorBody("invalid_request", err.message), 400);
  }
  log.error({ err }, "unhandled API error");
  return c.json(errorBody("internal", "internal error; see the gateway log"), 500);
}
