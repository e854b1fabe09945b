import { Hono } from "hono";
import { z } from "zod";
import { jsonBody } from "../http/errors.ts";
import { notFound } from "../http/refusals.ts";
import { providerSecretName } from "../providers/registry.ts";
import {
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
    if (body.provider) d.providers.require(body.provider);
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
