import { LobuError } from "@lobu/core";
import { Hono } from "hono";
import { z } from "zod";
import type { ApiEnv } from "../access/auth.ts";
import { endpoint } from "../access/endpoint.ts";
import { answererFor, authorizeFor } from "../access/permissions.ts";
import { jsonBody } from "../http/errors.ts";
import type { AnswerRequest } from "../runtime/answers.ts";
import type { RequestRegistry } from "../runtime/requests.ts";

const Answer = z.strictObject({
  choice: z.string().max(64).optional(),
  text: z.string().max(4000).optional(),
});

/** What the answer route uses. */
export interface RequestRouteDeps {
  requests: Pick<RequestRegistry, "get">;
  answer: AnswerRequest;
}

/** `/api/v1/requests`: answers to questions, approvals and capability requests (the REST channel). */
export function requestRoutes(d: RequestRouteDeps): Hono<ApiEnv> {
  const r = new Hono<ApiEnv>();
  r.post("/:requestId/answer", answerRequest(d));
  return r;
}

function answerRequest(d: RequestRouteDeps) {
  return endpoint("requests.answer", {}, async (c, { token }) => {
    const requestId = c.req.param("requestId") ?? "";
    const answer = await jsonBody(c, Answer);
    const request = await d.requests.get(requestId);
    if (!request)
      throw new LobuError("request_not_answerable", "unknown or expired request", {
        status: 404,
      });
    authorizeFor(token, "requests.answer", request.origin, `request ${requestId}`);
    // Admin tokens answer as the operator; others as the person whose request it is.
    const result = await d.answer(requestId, answer, answererFor(token, request));
    if (!result.ok)
      throw new LobuError("request_not_answerable", result.reason, { status: result.status });
    return c.json({ ok: true, request: result.request });
  });
}
