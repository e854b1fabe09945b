import { LobuError } from "@lobu/core";
import type { Context, Env, Handler } from "hono";
import { parseStreamId } from "../store/shared.ts";

/**
 * Query parameters, validated one way for every JSON route (REST API, admin
 * API, settings links): each route declares the parameters it takes, and
 * anything else — an unknown name, a repeated one, a value of the wrong form —
 * is a 400 that names the parameter and the form expected. An empty value
 * (`?limit=`) counts as absent, so forms can leave fields blank.
 */
export interface QueryParam<T> {
  /** The form a value must have, for error messages ("a whole number from 1 to 1000"). */
  readonly expected: string;
  /** The value, or `undefined` when `raw` does not have the expected form. */
  parse(raw: string): T | undefined;
  /** The value when the parameter is absent. */
  readonly fallback: T;
}

export type QuerySpec = Record<string, QueryParam<unknown>>;
export type QueryValues<S extends QuerySpec> = {
  [K in keyof S]: S[K] extends QueryParam<infer T> ? T : never;
};

/** Longest value echoed back in an error message. */
const ECHO_MAX = 80;

export function queryError(name: string, expected: string, got?: string): LobuError {
  const shown =
    got === undefined ? "" : `=${got.length > ECHO_MAX ? `${got.slice(0, ECHO_MAX)}…` : got}`;
  return new LobuError("invalid_query", `query parameter ${name}${shown} is not valid`, {
    status: 400,
    hint: `${name} must be ${expected}.`,
    details: { parameter: name, expected },
  });
}

/** Read and check the query of `c` against `spec`. */
export function parseQuery<S extends QuerySpec>(c: Context, spec: S): QueryValues<S> {
  const given = c.req.queries();
  const accepted = Object.keys(spec);
  for (const [name, values] of Object.entries(given)) {
    if (!Object.hasOwn(spec, name)) {
      throw new LobuError("invalid_query", `unknown query parameter ${name}`, {
        status: 400,
        hint: accepted.length
          ? `This route takes ${accepted.join(", ")}.`
          : "This route takes no query parameters.",
        details: { parameter: name, accepted },
      });
    }
    if (values.length > 1) {
      throw new LobuError(
        "invalid_query",
        `query parameter ${name} is given ${values.length} times`,
        {
          status: 400,
          hint: `Give ${name} once.`,
          details: { parameter: name, accepted },
        },
      );
    }
  }
  const out: Record<string, unknown> = {};
  for (const [name, param] of Object.entries(spec)) {
    const raw = given[name]?.[0];
    if (raw === undefined || raw === "") {
      out[name] = param.fallback;
      continue;
    }
    const value = param.parse(raw);
    if (value === undefined) throw queryError(name, param.expected, raw);
    out[name] = value;
  }
  return out as QueryValues<S>;
}

/**
 * A route handler that takes the query parameters `spec` declares, checked
 * (and no others) before it runs. The REST API's `endpoint()` does the same
 * after its roles check.
 */
export function withQuery<E extends Env, S extends QuerySpec>(
  spec: S,
  handler: (c: Context<E>, query: QueryValues<S>) => Response | Promise<Response>,
): Handler<E> {
  return (c) => handler(c, parseQuery(c, spec));
}

/** A whole number from `min` to `max` (digits only: no sign, exponent or fraction). */
export function intParam(opts: { min: number; max: number; fallback: number }): QueryParam<number> {
  return {
    expected: `a whole number from ${opts.min} to ${opts.max}`,
    parse: (raw) => {
      if (!/^\d{1,15}$/.test(raw)) return undefined;
      const n = Number(raw);
      return n >= opts.min && n <= opts.max ? n : undefined;
    },
    fallback: opts.fallback,
  };
}

/** A page size: 1 to `max`. */
export const limitParam = (fallback: number, max = 1000) => intParam({ min: 1, max, fallback });

/** A stream cursor as the API hands them out (`<ms>-<seq>`). */
export const cursorParam = (): QueryParam<string | undefined> => ({
  expected: "a cursor returned by this API, like 1795656708044-0",
  parse: (raw) => {
    try {
      parseStreamId(raw);
      return raw;
    } catch {
      return undefined;
    }
  },
  fallback: undefined,
});

/** A page cursor that names the last item of the previous page (its `next`). */
export const pageCursorParam = (): QueryParam<string | undefined> => ({
  expected: "the `next` value of the previous page",
  parse: (raw) => (/^[A-Za-z0-9_-]{1,128}$/.test(raw) ? raw : undefined),
  fallback: undefined,
});

/** Free text of at most `maxLength` characters, without control characters. */
export const textParam = (maxLength = 200): QueryParam<string | undefined> => ({
  expected: `text of at most ${maxLength} characters`,
  parse: (raw) => (raw.length <= maxLength && !/[\u0000-\u001f\u007f]/.test(raw) ? raw : undefined),
  fallback: undefined,
});

/** One of a fixed set of words. */
export function enumParam<const V extends string, F extends V | undefined>(
  values: readonly V[],
  fallback: F,
): QueryParam<V | F> {
  return {
    expected: `one of ${values.join(", ")}`,
    parse: (raw) => (values.includes(raw as V) ? (raw as V) : undefined),
    fallback,
  };
}

/** A real calendar day, YYYY-MM-DD (UTC): 2025-02-31 is not one. */
export const dayParam = (): QueryParam<string | undefined> => ({
  expected: "a date YYYY-MM-DD (UTC), e.g. 2025-01-31",
  parse: (raw) => {
    const at = /^\d{4}-\d{2}-\d{2}$/.test(raw) ? Date.parse(raw) : Number.NaN;
    return !Number.isNaN(at) && new Date(at).toISOString().startsWith(raw) ? raw : undefined;
  },
  fallback: undefined,
});
