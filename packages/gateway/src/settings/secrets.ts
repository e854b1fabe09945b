import { Hono } from "hono";
import { jsonBody } from "../http/errors.ts";
import { notFound } from "../http/refusals.ts";
import { secretName } from "../people/validate.ts";
import {
  auditChange,
  ownSecret,
  type PersonDeps,
  SecretValue,
  type SettingsEnv,
  type SettingsHandler,
  viewOf,
} from "./person.ts";

/** `/secrets/:name`: other secrets the agent asked the person for (write-only). */
export function secretRoutes(d: PersonDeps): Hono<SettingsEnv> {
  const r = new Hono<SettingsEnv>();
  r.put("/secrets/:name", setSecret(d));
  r.delete("/secrets/:name", deleteSecret(d));
  return r;
}

function setSecret(d: PersonDeps): SettingsHandler {
  return async (c) => {
    const name = secretName(c.req.param("name") ?? "");
    const { value } = await jsonBody(c, SecretValue);
    await d.secrets.set(ownSecret(c, name), value);
    auditChange(d, c, "secret_set", { name });
    return viewOf(d, c);
  };
}

function deleteSecret(d: PersonDeps): SettingsHandler {
  return async (c) => {
    const name = secretName(c.req.param("name") ?? "");
    if (!(await d.secrets.delete(ownSecret(c, name))))
      throw notFound(`you have no secret "${name}"`);
    auditChange(d, c, "secret_deleted", { name });
    return viewOf(d, c);
  };
}
