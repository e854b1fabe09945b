import { LobuError } from "@lobu/core";
import { Hono } from "hono";
import { z } from "zod";
import type { AgentDefinition } from "../agents/registry.ts";
import { jsonBody } from "../http/errors.ts";
import { notFound } from "../http/refusals.ts";
import { providerSecretName } from "../providers/registry.ts";
import {
  agentOf,
  auditChange,
  ownSecret,
  type PersonDeps,
  SecretValue,
  type SettingsEnv,
  type SettingsHandler,
  updateSettings,
  viewOf,
} from "./person.ts";

const ModelChoice = z.strictObject({
  provider: z.string().max(63).nullable(),
  model: z.string().max(200).nullable(),
});

/**
 * The person's model provider and model (`/model`), and their own key for a
 * provider (`/keys/:provider`; write-only: only a masked hint comes back).
 */
export function modelRoutes(d: PersonDeps): Hono<SettingsEnv> {
  const r = new Hono<SettingsEnv>();
  r.put("/model", chooseModel(d));
  r.put("/keys/:provider", setProviderKey(d));
  r.delete("/keys/:provider", deleteProviderKey(d));
  return r;
}

function chooseModel(d: PersonDeps): SettingsHandler {
  return async (c) => {
    const body = await jsonBody(c, ModelChoice);
    const agent = await agentOf(d, c);
    refuseDisallowed(d, agent, body.provider, body.model?.trim() || null);
    await updateSettings(d, c, (cur) => {
      const { provider: _p, model: _m, ...rest } = cur;
      return {
        ...rest,
        ...(body.provider ? { provider: body.provider } : {}),
        ...(body.model?.trim() ? { model: body.model.trim() } : {}),
      };
    });
    auditChange(d, c, "model_set", { provider: body.provider, model: body.model });
    return viewOf(d, c);
  };
}

function setProviderKey(d: PersonDeps): SettingsHandler {
  return async (c) => {
    const provider = d.providers.require(c.req.param("provider") ?? "");
    const { value } = await jsonBody(c, SecretValue);
    const meta = await d.secrets.set(ownSecret(c, providerSecretName(provider.id)), value.trim());
    auditChange(d, c, "provider_key_set", { provider: provider.id, version: meta.version });
    return viewOf(d, c);
  };
}

function deleteProviderKey(d: PersonDeps): SettingsHandler {
  return async (c) => {
    const provider = d.providers.require(c.req.param("provider") ?? "");
    if (!(await d.secrets.delete(ownSecret(c, providerSecretName(provider.id)))))
      throw notFound(`you have no key for ${provider.id}`);
    auditChange(d, c, "provider_key_deleted", { provider: provider.id });
    return viewOf(d, c);
  };
}

/**
 * Only what the operator allows (lobu.toml `models`): the page offers no
 * more, and a request that asks for more is refused here, not trimmed.
 */
function refuseDisallowed(
  d: PersonDeps,
  agent: AgentDefinition,
  providerId: string | null,
  model: string | null,
): void {
  const where = `[agents.${agent.id}] models in lobu.toml`;
  const provider = providerId ? d.providers.require(providerId) : undefined;
  if (provider && !d.modelAccess.allowsProvider(agent.id, provider.id, agent.provider)) {
    throw new LobuError("model_not_allowed", `${provider.id} is not allowed for this agent`, {
      status: 403,
      hint: `Pick one of the models the page offers; an operator can allow more with ${where}.`,
    });
  }
  if (!model) return;
  const onProvider = provider ?? (agent.provider ? d.providers.get(agent.provider) : undefined);
  const candidates = onProvider ? [onProvider] : d.providers.list();
  const allowed = candidates.some((p) => {
    const own = agent.model ?? p.defaultModel;
    return d.modelAccess.allowsModel(
      agent.id,
      { provider: p.id, model },
      { provider: agent.provider ?? p.id, model: own },
    );
  });
  if (!allowed) {
    throw new LobuError(
      "model_not_allowed",
      `${onProvider ? `${onProvider.id}/` : ""}${model.slice(0, 200)} is not allowed for this agent`,
      {
        status: 403,
        hint: `Pick one of the models the page offers; an operator can allow more with ${where}.`,
      },
    );
  }
}
