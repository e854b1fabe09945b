import { ApprovalChoice, CapabilityChoice, LobuError } from "@lobu/core";
import { Hono } from "hono";
import { z } from "zod";
import { personActor } from "../access/actors.ts";
import type { SettingsSession } from "../access/web-sessions.ts";
import { userKeyOf } from "../domain/origin.ts";
import type { PendingRequest } from "../domain/requests.ts";
import { jsonBody } from "../http/errors.ts";
import { forbidden, notFound } from "../http/refusals.ts";
import { secretName } from "../people/validate.ts";
import type { AnswerRequest } from "../runtime/answers.ts";
import type { RequestRegistry } from "../runtime/requests.ts";
import type { SecretStore } from "../secrets/store.ts";
import {
  auditChange,
  invalidSetting,
  type PersonDeps,
  type SettingsContext,
  type SettingsEnv,
  type SettingsHandler,
} from "./person.ts";
import { requestView } from "./view.ts";

const Answer = z.strictObject({
  choice: z.enum([...CapabilityChoice.options, ...ApprovalChoice.options]),
  /** The secret's value, for a granted `secret` request. */
  value: z.string().min(1).max(16_384).optional(),
});

/** What the request routes use. */
export interface RequestRouteDeps {
  requests: Pick<RequestRegistry, "get">;
  answer: AnswerRequest;
  secrets: Pick<SecretStore, "set">;
  audit: PersonDeps["audit"];
}

/** `/requests/:id`: a request the agent made in the chat, seen and answered from this page. */
export function requestRoutes(d: RequestRouteDeps): Hono<SettingsEnv> {
  const r = new Hono<SettingsEnv>();
  r.get("/requests/:id", showRequest(d));
  r.post("/requests/:id/answer", answerRequest(d));
  return r;
}

/** The request in the path, if it is the person's own (404 unknown, 403 someone else's). */
async function ownRequest(d: RequestRouteDeps, c: SettingsContext): Promise<PendingRequest> {
  const request = await d.requests.get(c.req.param("id") ?? "");
  if (!request) throw notFound("unknown or expired request");
  if (userKeyOf(request.origin) !== c.get("session").userKey)
    throw forbidden(
      "this request belongs to someone else",
      "Only the person who asked can answer.",
    );
  return request;
}

function showRequest(d: RequestRouteDeps): SettingsHandler {
  return async (c) => c.json(requestView(await ownRequest(d, c)));
}

function answerRequest(d: RequestRouteDeps): SettingsHandler {
  return async (c) => {
    const request = await ownRequest(d, c);
    const body = await jsonBody(c, Answer);
    const session = c.get("session");
    if (request.status !== "pending")
      throw new LobuError("request_not_answerable", `request already ${request.status}`, {
        status: 409,
      });
    const event = request.event;
    if (event.type === "capability_request" && event.kind === "secret" && body.choice === "granted")
      await grantSecret(d, c, request, event.value, body.value);
    const result = await d.answer(
      request.requestId,
      { choice: body.choice },
      { userKey: session.userKey, label: personLabel(session), actor: personActor(session) },
    );
    if (!result.ok)
      throw new LobuError("request_not_answerable", result.reason, { status: result.status });
    return c.json(requestView(result.request));
  };
}

/** A granted `secret` request: the person's value is stored as their secret for the agent that asked. */
async function grantSecret(
  d: RequestRouteDeps,
  c: SettingsContext,
  request: PendingRequest,
  asked: string,
  value: string | undefined,
): Promise<void> {
  if (!value) throw invalidSetting("enter the secret's value to grant it");
  const name = secretName(asked);
  const userKey = c.get("session").userKey;
  await d.secrets.set({ scope: { kind: "user", agentId: request.agentId, userKey }, name }, value);
  auditChange(d, c, "secret_set", { name, requestId: request.requestId });
}

/** How the answer shows who gave it: `<platform>:<name>`. */
function personLabel(session: SettingsSession): string {
  return `${session.userKey.split(":")[0]}:${session.userName ?? session.userKey.split(":").at(-1)}`;
}
