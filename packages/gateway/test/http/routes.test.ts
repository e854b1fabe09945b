import { createLogger } from "@lobu/core";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { errorResponse } from "../../src/http/errors.ts";
import { PublicUrl } from "../../src/http/public-url.ts";
import { limitParam, textParam, withQuery } from "../../src/http/query.ts";
import type { SettingsSignIn } from "../../src/http/sign-in.ts";
import { settingsSite } from "../../src/settings/site.ts";

/** The pieces the route modules share (the routes themselves are tested through a real gateway). */

describe("settingsSite", () => {
  const signIn: SettingsSignIn = {
    platform: "telegram",
    label: "Telegram",
    frameAncestors: ["https://web.telegram.org"],
    verify: async () => ({ userKey: "telegram:x:1" }),
  };

  it("reads the public URL when asked, so routes built before the server listens see the final one", () => {
    const url = new PublicUrl("https://lobu.example.com");
    const site = settingsSite({
      get publicUrl() {
        return url.value;
      },
      signIns: [signIn],
    });
    expect(site.https).toBe(false);
    url.listening("http://127.0.0.1:8080");
    expect(site.https).toBe(true);
    expect(site.cookie).toEqual({ name: "lobu_settings", path: "/settings", https: true });
    expect(site.page("n1")).toEqual({
      frameAncestors: ["https://web.telegram.org"],
      https: true,
      nonce: "n1",
    });
  });

  it("lets nobody frame the pages without a sign-in that needs it", () => {
    const site = settingsSite({ publicUrl: "http://127.0.0.1:1", signIns: [] });
    expect(site.page()).toEqual({ frameAncestors: [], https: false });
  });
});

describe("withQuery", () => {
  const log = createLogger("test", { level: "silent" });
  const app = new Hono();
  app.onError((err, c) => errorResponse(err, c, log));
  app.get(
    "/list",
    withQuery({ limit: limitParam(10), who: textParam(20) }, (c, q) => c.json(q)),
  );
  app.get(
    "/plain",
    withQuery({}, (c) => c.json({ ok: true })),
  );

  it("hands the handler the declared parameters, checked, with their defaults", async () => {
    expect(await (await app.request("/list?who=ann")).json()).toEqual({ limit: 10, who: "ann" });
  });

  it("refuses a parameter the route does not declare, or a malformed one, before the handler runs", async () => {
    for (const [path, parameter] of [
      ["/plain?x=1", "x"],
      ["/list?limit=0", "limit"],
      ["/list?nope=1", "nope"],
    ]) {
      const res = await app.request(path!);
      expect(res.status, path).toBe(400);
      expect(await res.json(), path).toMatchObject({
        error: { code: "invalid_query", details: { parameter } },
      });
    }
  });
});
