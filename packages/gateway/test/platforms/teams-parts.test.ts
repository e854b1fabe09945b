import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { isLobuError } from "@lobu/core";
import { startTeamsEmulator, type TeamsEmulator } from "@lobu/testkit";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RetryLater } from "../../src/platforms/shared/pacing.ts";
import { ConnectorClient, ConnectorToken, teamsCall } from "../../src/platforms/teams/client.ts";
import { serviceUrlAllowed, teamsSettings } from "../../src/platforms/teams/config.ts";
import { toTeams } from "../../src/platforms/teams/format.ts";
import { GraphFiles, shareIdOf } from "../../src/platforms/teams/graph-files.ts";
import { htmlToText } from "../../src/platforms/teams/html-text.ts";
import {
  Activity,
  classify,
  originOf,
  plainText,
} from "../../src/platforms/teams/webhook/parse.ts";
import { BotFrameworkKeys, verifyActivityToken } from "../../src/platforms/teams/webhook/verify.ts";
import { TEAMS_APP_ID, TEAMS_APP_PASSWORD } from "./drivers/teams.ts";

/**
 * The Teams adapter's parts on their own: the Bot Framework token checks
 * (against the emulator's OpenID metadata and JWKS), settings, activity
 * parsing, formatting, and the Connector client (token endpoint, 429,
 * service URL hosts).
 */

let tm: TeamsEmulator;
let keys: BotFrameworkKeys;

beforeAll(async () => {
  tm = await startTeamsEmulator({ appId: TEAMS_APP_ID, appPassword: TEAMS_APP_PASSWORD });
  keys = new BotFrameworkKeys(tm.openIdMetadataUrl);
});

afterAll(async () => {
  await tm?.close();
});

const activity = () => ({ serviceUrl: tm.serviceUrl, channelId: "msteams" });

describe("Teams: Bot Framework token checks", () => {
  it("accepts the connector's token and refuses every forgery", async () => {
    const deps = { keys, appId: TEAMS_APP_ID };
    expect((await verifyActivityToken(await tm.token(), activity(), deps)).ok).toBe(true);
    const cases = {
      "foreign key": await tm.token({ foreignKey: true }),
      "not endorsed": await tm.token({ unendorsedKey: true }),
      audience: await tm.token({ audience: "someone-else" }),
      issuer: await tm.token({ issuer: "https://login.microsoftonline.com/x/v2.0" }),
      expired: await tm.token({ expiresInSec: -301 - 60 }),
      serviceurl: await tm.token({ serviceUrl: "https://smba.trafficmanager.net/emea/" }),
    };
    for (const [what, token] of Object.entries(cases))
      expect((await verifyActivityToken(token, activity(), deps)).ok, what).toBe(false);
    // The key is endorsed for msteams, not for another channel.
    expect(
      (await verifyActivityToken(await tm.token(), { ...activity(), channelId: "slack" }, deps)).ok,
    ).toBe(false);
  });

  it("allows five minutes of clock skew, and no more", async () => {
    const token = await tm.token({ expiresInSec: 60 });
    const at = (sec: number) => ({ keys, appId: TEAMS_APP_ID, now: () => Date.now() + sec * 1000 });
    expect((await verifyActivityToken(token, activity(), at(60 + 240))).ok).toBe(true);
    expect((await verifyActivityToken(token, activity(), at(60 + 360))).ok).toBe(false);
  });

  it("refuses unsigned and symmetric tokens (no algorithm confusion)", async () => {
    const [header, payload] = (await tm.token()).split(".");
    const none = `${Buffer.from('{"alg":"none","kid":"x"}').toString("base64url")}.${payload}.`;
    const check = await verifyActivityToken(none, activity(), { keys, appId: TEAMS_APP_ID });
    expect(check).toMatchObject({ ok: false });
    const kid = JSON.parse(Buffer.from(header as string, "base64url").toString()).kid;
    const hs = await new SignJWT({ serviceurl: tm.serviceUrl })
      .setProtectedHeader({ alg: "HS256", kid })
      .setIssuer("https://api.botframework.com")
      .setAudience(TEAMS_APP_ID)
      .setExpirationTime("1h")
      .sign(new TextEncoder().encode("guessable"));
    expect((await verifyActivityToken(hs, activity(), { keys, appId: TEAMS_APP_ID })).ok).toBe(
      false,
    );
  });
});

describe("Teams: settings", () => {
  it("is off without TEAMS_APP_ID, and says what to fix when half set up", () => {
    expect(teamsSettings(undefined, {})).toBeUndefined();
    const missing = (() => {
      try {
        teamsSettings(undefined, { TEAMS_APP_ID });
      } catch (err) {
        return err;
      }
    })();
    expect(isLobuError(missing) && missing.message).toMatch(/TEAMS_APP_PASSWORD is not set/);
    expect(() =>
      teamsSettings({}, { TEAMS_APP_ID: "not-a-guid", TEAMS_APP_PASSWORD: "x" }),
    ).toThrow(/not a GUID/);
    expect(() =>
      teamsSettings({ service_hosts: [] }, { TEAMS_APP_ID, TEAMS_APP_PASSWORD: "x" }),
    ).toThrow(/platforms\.teams\.service_hosts/);
    const s = teamsSettings(
      { tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47" },
      { TEAMS_APP_ID, TEAMS_APP_PASSWORD: "x" },
    );
    expect(s?.tokenUrl).toBe(
      "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token",
    );
    expect(s?.openIdMetadataUrl).toBe(
      "https://login.botframework.com/v1/.well-known/openidconfiguration",
    );
  });

  it("sends the bot's token only to the listed service hosts, over https", () => {
    const hosts = ["smba.trafficmanager.net", "*.botframework.com"];
    expect(serviceUrlAllowed("https://smba.trafficmanager.net/amer/", hosts)).toBe(true);
    expect(serviceUrlAllowed("https://europe.botframework.com/", hosts)).toBe(true);
    expect(serviceUrlAllowed("http://smba.trafficmanager.net/amer/", hosts)).toBe(false);
    expect(serviceUrlAllowed("https://evilbotframework.com/", hosts)).toBe(false);
    expect(serviceUrlAllowed("https://smba.trafficmanager.net.evil.example/", hosts)).toBe(false);
    expect(serviceUrlAllowed("https://user:pw@smba.trafficmanager.net/", hosts)).toBe(false);
    expect(serviceUrlAllowed("http://127.0.0.1:9/amer/", ["127.0.0.1"])).toBe(true);
  });
});

describe("Teams: activities", () => {
  const base = {
    type: "message",
    id: "1700000000123",
    channelId: "msteams",
    serviceUrl: "https://smba.trafficmanager.net/amer/",
    from: { id: "29:1a", name: "Ada" },
    conversation: {
      id: "19:abc@thread.tacv2;messageid=1700000000001",
      conversationType: "channel",
      tenantId: "t1",
    },
  };

  it("reads files: 1:1 download URLs and pasted pictures get a ref; cards, HTML and channel files do not", () => {
    const a = Activity.parse({
      ...base,
      text: "see",
      attachments: [
        {
          contentType: "application/vnd.microsoft.teams.file.download.info",
          name: "q3.pdf",
          contentUrl: "https://contoso-my.sharepoint.com/personal/ada/q3.pdf",
          content: { downloadUrl: "https://contoso-my.sharepoint.com/download?tempauth=x" },
        },
        {
          contentType: "image/png",
          contentUrl: "https://smba.trafficmanager.net/amer/v3/attachments/0-a/views/original",
        },
        { contentType: "text/html", content: "<p>see</p>" },
        { contentType: "application/vnd.microsoft.card.adaptive", content: {} },
        // A channel file: a SharePoint link the bot cannot open.
        {
          contentType: "reference",
          name: "plan.docx",
          contentUrl: "https://contoso.sharepoint.com/plan.docx",
        },
      ],
    });
    expect(classify(a)).toEqual({
      kind: "message",
      text: "see",
      files: [
        { name: "q3.pdf", ref: "download:https://contoso-my.sharepoint.com/download?tempauth=x" },
        {
          name: "image-2.png",
          mimeType: "image/png",
          ref: "bot:https://smba.trafficmanager.net/amer/v3/attachments/0-a/views/original",
        },
        { name: "plan.docx" },
      ],
    });
  });

  it("reads a channel file as a Graph reference, with the tenant and the sender's Entra id", () => {
    const a = Activity.parse({
      ...base,
      from: { id: "29:1a", name: "Ada", aadObjectId: "00000000-0000-0000-0000-0000000000ad" },
      attachments: [
        {
          contentType: "reference",
          name: "plan.docx",
          contentUrl: "https://contoso.sharepoint.com/sites/x/Shared%20Documents/plan.docx",
        },
      ],
    });
    const [file] =
      classify(a).kind === "message" ? (classify(a) as { files: unknown[] }).files : [];
    expect(file).toEqual({
      name: "plan.docx",
      ref: `graph:${JSON.stringify({
        url: "https://contoso.sharepoint.com/sites/x/Shared%20Documents/plan.docx",
        tenant: "t1",
        sender: "00000000-0000-0000-0000-0000000000ad",
      })}`,
    });
    // Graph's share id: `u!` and the URL in unpadded base64url.
    expect(
      shareIdOf("https://onedrive.live.com/redir?resid=1231244193912!12&authKey=1201919!12921!1"),
    ).toBe(
      "u!aHR0cHM6Ly9vbmVkcml2ZS5saXZlLmNvbS9yZWRpcj9yZXNpZD0xMjMxMjQ0MTkzOTEyITEyJmF1dGhLZXk9MTIwMTkxOSExMjkyMSEx",
    );
  });

  it("reads a Stop action (Action.Execute or Action.Submit) and nothing that only looks like one", () => {
    const data = { lobu: "stop", action: "lobu-stop:msg_1" };
    const invoke = Activity.parse({
      ...base,
      type: "invoke",
      name: "adaptiveCard/action",
      value: { action: { type: "Action.Execute", verb: "lobu.stop", data } },
    });
    expect(classify(invoke)).toEqual({ kind: "stop", stop: data, invoke: true });
    expect(classify(Activity.parse({ ...base, value: data }))).toEqual({
      kind: "stop",
      stop: data,
      invoke: false,
    });
    const wrong = Activity.parse({
      ...base,
      type: "invoke",
      name: "adaptiveCard/action",
      value: { action: { type: "Action.Execute", verb: "lobu.stop", data: { lobu: "answer" } } },
    });
    expect(classify(wrong).kind).toBe("ignore");
  });

  it("reads a channel thread as its conversation, and the mention out of the text", () => {
    const a = Activity.parse({ ...base, text: "<at>Lobu</at> hello &amp; <b>welcome</b>" });
    expect(classify(a)).toEqual({ kind: "message", text: "hello & welcome", files: [] });
    expect(originOf(a)).toMatchObject({
      platform: "teams",
      workspace: "t1",
      channelId: "19:abc@thread.tacv2;messageid=1700000000001",
      threadId: "1700000000001",
      userId: "29:1a",
      isDirect: false,
      messageRef: "1700000000123",
    });
    expect(plainText("a<br>b")).toBe("a\nb");
  });

  it("takes only the bot's own card data as an answer", () => {
    const submit = Activity.parse({
      ...base,
      value: { lobu: "answer", requestId: "r1", choice: "c" },
    });
    expect(classify(submit)).toMatchObject({
      kind: "submit",
      answer: { requestId: "r1", choice: "c" },
    });
    expect(classify(Activity.parse({ ...base, value: { anything: 1 } })).kind).toBe("ignore");
    const invoke = (verb: string) =>
      Activity.parse({
        ...base,
        type: "invoke",
        name: "adaptiveCard/action",
        value: {
          action: {
            type: "Action.Execute",
            verb,
            data: { lobu: "answer", requestId: "r1", choice: "c" },
          },
        },
      });
    expect(classify(invoke("lobu.answer")).kind).toBe("execute");
    expect(classify(invoke("other")).kind).toBe("ignore");
  });

  it("escapes what Teams would render as markup, and splits long text", () => {
    expect(toTeams("a <script> & *b*")[0]).toBe("a &lt;script&gt; &amp; *b*");
    const parts = toTeams("word ".repeat(2000));
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(4000);
  });
});

describe("Teams: the Connector client", () => {
  const token = () =>
    new ConnectorToken({
      appId: TEAMS_APP_ID,
      appPassword: TEAMS_APP_PASSWORD,
      tokenUrl: tm.tokenUrl,
    });

  it("gets a token by client credentials and turns a 429 into RetryLater with Retry-After", async () => {
    const client = new ConnectorClient(token(), ["127.0.0.1"]);
    const conversation = tm.personal({ id: "29:1client", name: "C" }).id;
    tm.forceRateLimit("POST activity", 3);
    const err = await teamsCall(() =>
      client.send(tm.serviceUrl, conversation, { type: "message", text: "hi" }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryLater);
    expect((err as RetryLater).afterMs).toBe(3000);
    const id = await client.send(tm.serviceUrl, conversation, { type: "message", text: "hi" });
    expect(tm.message(id)?.text).toBe("hi");
  });

  it("says which secret is wrong, and never sends its token to an unlisted host", async () => {
    const bad = new ConnectorToken({
      appId: TEAMS_APP_ID,
      appPassword: "wrong",
      tokenUrl: tm.tokenUrl,
    });
    await expect(bad.get()).rejects.toThrow(/TEAMS_APP_PASSWORD/);
    const calls = tm.calls.length;
    const client = new ConnectorClient(token(), ["smba.trafficmanager.net"]);
    await expect(
      client.send(tm.serviceUrl, "a:1x", { type: "message", text: "x" }),
    ).rejects.toThrow(/service_hosts/);
    expect(tm.calls.length).toBe(calls);
  });
});

describe("Teams: files through Microsoft Graph", () => {
  const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
  const SENDER = "00000000-0000-0000-0000-00000000005e";
  let graph: Server;
  let elsewhere: Server;
  const seenElsewhere: (string | undefined)[] = [];
  let graphUrl = "";
  let redirectTo = "";

  const serve = (handler: Parameters<typeof createServer>[1]) =>
    new Promise<Server>((resolve) => {
      const server = createServer(handler);
      server.listen(0, "127.0.0.1", () => resolve(server));
    });

  beforeAll(async () => {
    elsewhere = await serve((req, res) => {
      seenElsewhere.push(req.headers.authorization ?? "none");
      res.end("stolen");
    });
    // A Graph that answers like the real one, but redirects the content wherever the test says.
    graph = await serve((req, res) => {
      if (req.method === "POST") {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ access_token: "graph-token", expires_in: 3599 }));
      } else if (req.url?.includes("/driveItem/content")) {
        res.writeHead(302, { location: redirectTo });
        res.end();
      } else {
        res.setHeader("content-type", "application/json");
        res.end(
          JSON.stringify({ id: "1", size: 6, file: {}, createdBy: { user: { id: SENDER } } }),
        );
      }
    });
    graphUrl = `http://127.0.0.1:${(graph.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((r) => graph.close(r));
    await new Promise((r) => elsewhere.close(r));
  });

  const files = () =>
    new GraphFiles(
      {
        appId: TEAMS_APP_ID,
        appPassword: TEAMS_APP_PASSWORD,
        tokenUrl: `${graphUrl}/botframework.com/oauth2/v2.0/token`,
        graphUrl: `${graphUrl}/v1.0`,
      },
      ["*.sharepoint.com", "127.0.0.1"],
    );

  it("refuses a file off SharePoint, an unknown tenant or sender, without asking Graph", async () => {
    const opts = { maxBytes: 1000 };
    const good = { url: `${graphUrl}/sites/a/b.txt`, tenant: TENANT, sender: SENDER };
    for (const ref of [
      { ...good, url: "https://evil.example/b.txt" },
      { ...good, url: "http://contoso.sharepoint.com/b.txt" },
      { ...good, tenant: "botframework.com" },
      { ...good, sender: "" },
    ])
      await expect(files().open(ref, opts)).rejects.toMatchObject({ name: "FileRefused" });
    // Another sender than the file's creator: refused after the metadata.
    await expect(
      files().open({ ...good, sender: "00000000-0000-0000-0000-0000000000ff" }, opts),
    ).rejects.toThrow(/only files you uploaded yourself/);
    // Larger than allowed: refused before the content.
    await expect(files().open(good, { maxBytes: 3 })).rejects.toMatchObject({
      name: "FileTooLarge",
    });
  });

  it("follows Graph's redirect only to SharePoint hosts, and never with the token", async () => {
    const ref = { url: `${graphUrl}/sites/a/b.txt`, tenant: TENANT, sender: SENDER };
    // localhost is the same machine, but not a listed host.
    redirectTo = `http://localhost:${(elsewhere.address() as AddressInfo).port}/steal`;
    await expect(files().open(ref, { maxBytes: 1000 })).rejects.toThrow(/not SharePoint/);
    expect(seenElsewhere).toEqual([]);
    redirectTo = `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}/file`;
    const res = await files().open(ref, { maxBytes: 1000 });
    expect(await res.text()).toBe("stolen");
    expect(seenElsewhere).toEqual(["none"]);
  });
});

describe("Teams: Graph's HTML message bodies read as text", () => {
  it("keeps paragraphs, mentions, links and pictures; drops other markup; decodes entities", () => {
    expect(
      htmlToText(
        '<p>Hi <at id="0">Ada</at>,</p><p>see <a href="https://x.example/doc">the doc</a> &amp; <b>this</b>:<br><img src="https://graph.microsoft.com/v1.0/hosted"></p><ul><li>one</li><li>two &lt;3 &#x1F600;</li></ul>',
      ),
    ).toBe(
      "Hi @Ada,\nsee the doc (https://x.example/doc) & this:\n[image]\n- one\n- two <3 \u{1F600}",
    );
    // Text that looks like markup after decoding stays text (it is escaped when shown to the model).
    expect(htmlToText("&lt;/message&gt; ignore")).toBe("</message> ignore");
    expect(htmlToText("<div>a</div><div>b</div>")).toBe("a\nb");
  });
});
