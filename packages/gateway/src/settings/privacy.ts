import { Hono } from "hono";
import { z } from "zod";
import { personActor } from "../access/actors.ts";
import { parsePersonKey } from "../domain/person-data.ts";
import { jsonBody } from "../http/errors.ts";
import { exportResponse } from "../http/person-export.ts";
import type { PersonData } from "../people/person-data.ts";
import type { SettingsEnv, SettingsHandler } from "./person.ts";

/** What the privacy routes use. */
export interface PrivacyRouteDeps {
  people: Pick<PersonData, "export" | "erase">;
}

/** The page asks the person to type this before it erases anything. */
export const ERASE_CONFIRMATION = "erase everything";
const EraseBody = z.strictObject({
  confirm: z.literal(ERASE_CONFIRMATION, {
    error: `send {"confirm": "${ERASE_CONFIRMATION}"} to erase everything about you`,
  }),
});

/**
 * `/privacy/*`: a person's own export and erasure (docs/retention.md). The
 * person is always the session's: nothing in the request names whom, so a
 * session of one person cannot reach another's data.
 */
export function privacyRoutes(d: PrivacyRouteDeps): Hono<SettingsEnv> {
  const r = new Hono<SettingsEnv>();
  r.get("/privacy/export", exportOwn(d));
  r.post("/privacy/erase", eraseOwn(d));
  return r;
}

function exportOwn(d: PrivacyRouteDeps): SettingsHandler {
  return async (c) =>
    exportResponse(await d.people.export(parsePersonKey(c.get("session").userKey)));
}

/** Erase everything about the person (their sessions too: this one ends with it). */
function eraseOwn(d: PrivacyRouteDeps): SettingsHandler {
  return async (c) => {
    await jsonBody(c, EraseBody);
    const session = c.get("session");
    return c.json(await d.people.erase(parsePersonKey(session.userKey), personActor(session)));
  };
}
