import { Hono } from "hono";
import { callerActor } from "../access/actors.ts";
import type { ApiEnv } from "../access/auth.ts";
import { endpoint } from "../access/endpoint.ts";
import { authorizeFor } from "../access/permissions.ts";
import { parsePersonKey } from "../domain/person-data.ts";
import { exportResponse } from "../http/person-export.ts";
import type { PersonData } from "../people/person-data.ts";

/** What the people routes use. */
export interface PeopleRouteDeps {
  people: Pick<PersonData, "export" | "erase">;
}

/**
 * `/api/v1/admin/people/:userKey`: everything the gateway holds about one
 * person, exported or erased (docs/retention.md). Admin tokens for anyone;
 * client tokens for the api users of their namespace; user tokens for their
 * own user.
 */
export function peopleRoutes(d: PeopleRouteDeps): Hono<ApiEnv> {
  const r = new Hono<ApiEnv>();
  r.get("/:userKey/export", exportPerson(d));
  r.delete("/:userKey", erasePerson(d));
  return r;
}

function exportPerson(d: PeopleRouteDeps) {
  return endpoint("people.export", {}, async (c, { token }) => {
    const person = parsePersonKey(c.req.param("userKey") ?? "");
    authorizeFor(token, "people.export", person, `person ${person.userKey}`);
    return exportResponse(await d.people.export(person));
  });
}

function erasePerson(d: PeopleRouteDeps) {
  return endpoint("people.erase", {}, async (c, { token }) => {
    const person = parsePersonKey(c.req.param("userKey") ?? "");
    authorizeFor(token, "people.erase", person, `person ${person.userKey}`);
    return c.json(await d.people.erase(person, callerActor(c)));
  });
}
