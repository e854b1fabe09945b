import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import {
  collectEvents,
  type GatewayProcess,
  type MockLlm,
  type RecordedRequest,
  type SlackEmulator,
  startGatewayProcess,
  startMockLlm,
  startSlackEmulator,
  startTelegramEmulator,
  type TelegramEmulator,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FILES_TOML,
  llmEnv,
  PROVIDER_KEY,
  sendFiller,
  startSlackGateway,
  telegramEnv,
  WAIT,
} from "../platforms/helpers.ts";

/**
 * Files end to end on a real `lobu run`: attachments from Slack, Telegram and
 * REST uploads land in the conversation's sandbox (`~/inbox/<date>/`), the
 * agent reads them with its own bash, and `send_file` delivers a result back
 * natively (a Slack upload in the thread, a Telegram document, a REST
 * download only the conversation's client can fetch). REST runs on both
 * sandbox tiers, with the attacks: traversal in names and paths, a link the
 * agent plants at ~/inbox, another client's download.
 */

const SIGNING_SECRET = "slack-signing-secret-files";
const SLACK_TOKEN = "xoxb-7777-8888-files";
const TG_TOKEN = "7000000077:AAfiles-test-token";
const TG_SECRET = "webhook-secret_files";
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
  "base64",
);

/** The inbox path the agent was told for a file (`/workspace/inbox/<date>/<name>`). */
const inboxPath = (text: string, name: string) =>
  new RegExp(`/workspace/inbox/\\d{4}-\\d{2}-\\d{2}/${name.replace(/[.()]/g, "\\$&")}`).exec(
    text,
  )?.[0] ?? "not-told";

/**
 * The agent reads the attachment with `cat`, writes a result and sends it:
 * bash cat → bash write → send_file → the final text (with what came back).
 */
function scriptReadAndSend(llm: MockLlm, prefix: string, name: string): void {
  llm.when(
    (r) => r.lastUserText.startsWith(prefix),
    (r) => ({
      toolCalls: [{ name: "bash", input: { command: `cat ${inboxPath(r.lastUserText, name)}` } }],
    }),
    (r) => ({
      toolCalls: [
        {
          name: "bash",
          input: {
            command: `mkdir -p out && cp ${inboxPath(r.lastUserText, name)} out/result.txt`,
          },
        },
      ],
      text: `Read: ${r.toolResults[0]?.content ?? ""}`,
    }),
    {
      toolCalls: [{ name: "send_file", input: { path: "out/result.txt", caption: "The result" } }],
    },
    (r) => ({ text: `Sent back. ${r.toolResults[0]?.content ?? ""}` }),
  );
}

function requestsFor(llm: MockLlm, prefix: string): RecordedRequest[] {
  return llm.requests.filter((r) => r.lastUserText.startsWith(prefix));
}

describe("files on Slack and Telegram (process sandboxes)", () => {
  let llm: MockLlm;
  let slack: SlackEmulator;
  let tg: TelegramEmulator;
  let gw: GatewayProcess;

  beforeAll(async () => {
    llm = await startMockLlm({ apiKey: PROVIDER_KEY });
    slack = await startSlackEmulator({
      signingSecret: SIGNING_SECRET,
      botToken: SLACK_TOKEN,
      botName: "lobu",
      subscriptions: ["app_mention", "message.im", "message.channels"],
    });
    tg = await startTelegramEmulator({
      botToken: TG_TOKEN,
      botUsername: "lobu_files_bot",
      rateLimits: false,
    });
    gw = await startSlackGateway({
      slack,
      llm,
      toml: [
        "[sandbox]",
        'driver = "process"',
        'idle_timeout = "10m"',
        "",
        ...FILES_TOML,
        "[platforms.slack]",
        'stream_interval = "200ms"',
        "",
        "[platforms.telegram]",
        'mode = "webhook"',
        'stream_interval = "200ms"',
      ].join("\n"),
      env: {
        ...telegramEnv(tg, TG_TOKEN),
        TELEGRAM_WEBHOOK_SECRET: TG_SECRET,
      },
    });
    await tg.waitFor(() => tg.webhook, { ...WAIT, description: "setWebhook" });
  });

  afterAll(async () => {
    await gw?.stop();
    await slack?.close();
    await tg?.close();
    await llm?.close();
  });

  it("Slack: a CSV in a thread is read in the sandbox and the result is uploaded into the thread", async () => {
    const channel = slack.addChannel({ name: "data" });
    const csv = "region,sales\nnorth,10\nsouth,20\n";
    scriptReadAndSend(llm, "crunch this", "sales.csv");
    const sent = await slack.mention({
      user: "UFILES1",
      channel: channel.id,
      text: "crunch this",
      files: [{ name: "sales.csv", content: csv, mimetype: "text/csv" }],
    });
    expect(sent.status).toBe(200);
    const upload = await slack.waitFor(
      () => slack.uploads.find((f) => f.name === "result.txt" && f.channel === channel.id),
      { ...WAIT, description: "the uploaded result" },
    );
    // Into the mention's thread, with its caption, holding what the agent read.
    expect(upload.threadTs).toBe(sent.ts);
    expect(upload.initialComment).toBe("The result");
    expect(upload.data.toString()).toContain("north,10");
    // The agent was told the path, name, type and size; its cat read the file.
    const told = requestsFor(llm, "crunch this")[0]!.lastUserText;
    expect(told).toMatch(
      /\/workspace\/inbox\/\d{4}-\d{2}-\d{2}\/sales\.csv \(name: sales\.csv, type: text\/csv, size: 31 bytes\)/,
    );
    const outputs = requestsFor(llm, "crunch this").flatMap((r) => r.toolResults);
    expect(outputs[0]?.content).toBe(csv);
    // The system prompt says where files arrive and how to send one back.
    const system = JSON.stringify(requestsFor(llm, "crunch this")[0]!.body.system);
    expect(system).toContain("~/inbox/<date>/");
    expect(system).toContain("call the send_file tool");
    // The bot token went to Slack alone, for the download and the upload flow.
    expect(slack.calls.map((c) => c.method)).toEqual(
      expect.arrayContaining(["files.getUploadURLExternal", "files.completeUploadExternal"]),
    );
  });

  it("Slack: a picture is also shown to the model as an image", async () => {
    llm.when((r) => r.lastUserText.startsWith("what is in this picture"), { text: "A pixel." });
    await slack.dm({
      user: "UFILES2",
      text: "what is in this picture",
      files: [{ name: "dot.png", content: PNG, mimetype: "image/png" }],
    });
    await slack.waitFor(
      () =>
        slack
          .messages(slack.imChannel("UFILES2").id)
          .find((m) => JSON.stringify(m.blocks ?? m.text).includes("A pixel.")),
      { ...WAIT, description: "the reply" },
    );
    const body = JSON.stringify(requestsFor(llm, "what is in this picture")[0]!.body);
    expect(body).toContain('"type":"image"');
    expect(body).toContain(PNG.toString("base64"));
  });

  it("Slack: a file over the limit is refused with a message; the text is still answered", async () => {
    llm.when(
      (r) => r.lastUserText.startsWith("here is a big one"),
      (r) => ({
        text: r.lastUserText.includes("huge.bin: not saved") ? "Noted the refusal." : "?",
      }),
    );
    await slack.dm({
      user: "UFILES3",
      text: "here is a big one",
      files: [{ name: "huge.bin", content: Buffer.alloc(1024 * 1024 + 1, 7) }],
    });
    const shown = await slack.waitFor(
      () =>
        slack
          .messages(slack.imChannel("UFILES3").id)
          .map((m) => JSON.stringify(m.blocks ?? m.text))
          .find((t) => t.includes("Noted the refusal.")),
      { ...WAIT, description: "the reply" },
    );
    expect(shown).toContain("huge.bin: not saved: it is larger than the 1 MiB limit for a file");
  });

  it("Slack: the bot token goes to Slack alone, whatever URL an event names", async () => {
    const seen: (string | undefined)[] = [];
    const elsewhere = createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.end("stolen");
    });
    await new Promise<void>((r) => elsewhere.listen(0, "127.0.0.1", r));
    try {
      const url = `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}/x.txt`;
      llm.when(
        (r) => r.lastUserText.startsWith("fetch this"),
        (r) => ({ text: r.lastUserText }),
      );
      const im = slack.imChannel("UFILES5");
      // A signed event (as Slack would send it) whose file points somewhere else.
      const sent = await slack.sendEvent({
        type: "message",
        channel_type: "im",
        channel: im.id,
        user: "UFILES5",
        text: "fetch this",
        ts: "1796000000.000100",
        files: [{ name: "x.txt", mimetype: "text/plain", size: 6, url_private_download: url }],
      });
      expect(sent.status).toBe(200);
      const shown = await slack.waitFor(
        () =>
          slack
            .messages(im.id)
            .map((m) => JSON.stringify(m.blocks ?? m.text))
            .find((t) => t.includes("x.txt: not saved: its URL is not on Slack")),
        { ...WAIT, description: "the refusal" },
      );
      expect(shown).toBeDefined();
      expect(seen).toEqual([]);
    } finally {
      elsewhere.close();
    }
  });

  it("Slack: without the files:read scope the person is told what the app needs", async () => {
    const install = slack.installations[0]!;
    const scopes = install.scopes;
    install.scopes = scopes.filter((s) => s !== "files:read");
    try {
      llm.when((r) => r.lastUserText.startsWith("read my notes"), { text: "Answered anyway." });
      await slack.dm({
        user: "UFILES4",
        text: "read my notes",
        files: [{ name: "notes.txt", content: "secret plans" }],
      });
      const shown = await slack.waitFor(
        () =>
          slack
            .messages(slack.imChannel("UFILES4").id)
            .map((m) => JSON.stringify(m.blocks ?? m.text))
            .find((t) => t.includes("Answered anyway.")),
        { ...WAIT, description: "the reply" },
      );
      expect(shown).toContain("notes.txt: not saved: Slack refused the download");
      expect(shown).toContain("files:read scope");
    } finally {
      install.scopes = scopes;
    }
  });

  it("Telegram: a document is read and a result document comes back, in forum topics too; photos, videos and voice land", async () => {
    const ada = { id: 4242, first_name: "Ada", username: "ada" };
    const chat = { id: ada.id, type: "private" as const };
    scriptReadAndSend(llm, "tally this", "scores.csv");
    tg.userSends({
      chat,
      from: ada,
      text: "tally this",
      document: { name: "scores.csv", content: "who,score\nada,3\n", mimeType: "text/csv" },
    });
    const doc = await tg.waitFor(
      () => tg.messages(ada.id).find((m) => m.fromBot && m.document?.fileName === "result.txt"),
      { ...WAIT, description: "the result document" },
    );
    expect(doc.caption).toBe("The result");
    expect(doc.document?.data.toString()).toContain("ada,3");

    // In a forum topic, the file goes back into the same topic.
    const forum = { id: -100777, type: "supergroup" as const, title: "Data", is_forum: true };
    tg.userSends({ chat: forum, from: ada, text: "/help" });
    await tg.waitFor(() => tg.messages(forum.id).length > 0, WAIT);
    const topic = tg.createForumTopic({ chatId: forum.id, name: "Numbers", from: ada });
    scriptReadAndSend(llm, "tally the topic", "topic.csv");
    tg.userSends({
      chat: forum,
      from: ada,
      text: "@lobu_files_bot tally the topic",
      messageThreadId: topic,
      document: { name: "topic.csv", content: "who,score\nbob,5\n", mimeType: "text/csv" },
    });
    const inTopic = await tg.waitFor(
      () =>
        tg
          .messages(forum.id, { threadId: topic })
          .find((m) => m.fromBot && m.document?.fileName === "result.txt"),
      { ...WAIT, description: "the result document in the topic" },
    );
    expect(inTopic.document?.data.toString()).toContain("bob,5");

    llm.when((r) => r.lastUserText.startsWith("keep this picture"), { text: "Kept." });
    tg.userSends({ chat, from: ada, text: "keep this picture", photo: { content: PNG } });
    await tg.waitFor(
      () => tg.messages(ada.id).find((m) => m.fromBot && (m.text ?? "").includes("Kept.")),
      { ...WAIT, description: "the reply to the photo" },
    );
    // A picture the agent sends goes out as a photo.
    llm.when(
      (r) => r.lastUserText.startsWith("send the picture back"),
      {
        toolCalls: [
          {
            name: "bash",
            input: { command: "mkdir -p out && cp ~/inbox/*/photo-*.jpg out/back.jpg" },
          },
        ],
      },
      { toolCalls: [{ name: "send_file", input: { path: "~/out/back.jpg" } }] },
      { text: "Here it is." },
    );
    tg.userSends({ chat, from: ada, text: "send the picture back" });
    const photo = await tg.waitFor(
      () => tg.messages(ada.id).find((m) => m.fromBot && m.photo !== undefined),
      { ...WAIT, description: "the photo" },
    );
    expect(photo.photo?.data.equals(PNG)).toBe(true);
    expect(tg.calls.some((c) => c.method === "sendPhoto")).toBe(true);

    llm.when(
      (r) => r.lastUserText.startsWith("listen"),
      { toolCalls: [{ name: "bash", input: { command: "ls -R ~/inbox" } }] },
      (r) => ({ text: `Inbox: ${r.toolResults[0]?.content.replace(/\s+/g, " ")}` }),
    );
    tg.userSends({
      chat,
      from: ada,
      text: "watch",
      video: { name: "clip.mp4", content: "mp4-video-bytes" },
    });
    await tg.waitFor(
      () => tg.messages(ada.id).find((m) => m.fromBot && (m.text ?? "").includes("echo: watch")),
      { ...WAIT, description: "the reply to the video" },
    );
    tg.userSends({ chat, from: ada, text: "listen", voice: { content: "OggS-voice" } });
    const listed = await tg.waitFor(
      () => tg.messages(ada.id).find((m) => m.fromBot && (m.text ?? "").includes("Inbox:")),
      { ...WAIT, description: "the inbox listing" },
    );
    expect(listed.text).toMatch(/voice-\d+\.ogg/);
    expect(listed.text).toMatch(/photo-\d+\.jpg/);
    expect(listed.text).toMatch(/clip\.mp4/);
    expect(requestsFor(llm, "watch")[0]!.lastUserText).toMatch(/type: video\/mp4/);
    expect(requestsFor(llm, "listen")[0]!.lastUserText).toMatch(/type: audio\/ogg/);
  });
});

/** A REST client: its token, and a message with files (multipart) answered as an event stream. */
async function sendWithFiles(
  gw: GatewayProcess,
  token: string,
  fields: Record<string, string>,
  files: { name: string; content: string | Buffer; type?: string }[],
): Promise<Response> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  for (const f of files) form.append("file", new Blob([f.content], { type: f.type ?? "" }), f.name);
  return fetch(`${gw.url}/api/v1/agents/default/messages?stream=true`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
    body: form,
  });
}

async function clientToken(gw: GatewayProcess, namespace: string): Promise<string> {
  const res = await gw.api("/api/v1/tokens", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: namespace, role: "client", namespace }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { token: string }).token;
}

describe.each(["process", "virtual"] as const)("files over REST (%s sandboxes)", (driver) => {
  let llm: MockLlm;
  let gw: GatewayProcess;
  let acme: string;
  let globex: string;

  beforeAll(async () => {
    llm = await startMockLlm({ apiKey: PROVIDER_KEY });
    gw = await startGatewayProcess({
      toml: [
        "[sandbox]",
        `driver = "${driver}"`,
        'idle_timeout = "10m"',
        ...(driver === "virtual" ? ["pool_size = 1"] : []),
        "",
        ...FILES_TOML,
        "max_files_per_message = 2",
        "max_conversation_mb = 1",
        'allowed_types = ["text/*", "image/*", "application/octet-stream"]',
      ].join("\n"),
      env: llmEnv(llm),
    });
    acme = await clientToken(gw, "acme");
    globex = await clientToken(gw, "globex");
  });

  afterAll(async () => {
    await gw?.stop();
    await llm?.close();
  });

  it("an upload is read in the sandbox; the result is a download only the conversation's client can fetch", async () => {
    const prefix = `rest crunch ${driver}`;
    scriptReadAndSend(llm, prefix, "data.csv");
    const res = await sendWithFiles(gw, acme, { user: "u1", text: prefix }, [
      { name: "data.csv", content: "k,v\na,1\n", type: "text/csv" },
    ]);
    expect(res.status).toBe(200);
    const events = await collectEvents(res);
    const file = events.find((e) => e.type === "file");
    expect(file).toMatchObject({
      name: "result.txt",
      mimeType: "text/plain",
      caption: "The result",
    });
    const url = (file as { url: string }).url;
    expect(url).toMatch(/^\/api\/v1\/files\/file_\w+$/);

    const mine = await fetch(`${gw.url}${url}`, { headers: { authorization: `Bearer ${acme}` } });
    expect(mine.status).toBe(200);
    expect(mine.headers.get("content-disposition")).toContain('filename="result.txt"');
    expect(mine.headers.get("x-content-type-options")).toBe("nosniff");
    expect(await mine.text()).toContain("a,1");
    // Another app's client, and nobody without a token, cannot fetch it.
    const theirs = await fetch(`${gw.url}${url}`, {
      headers: { authorization: `Bearer ${globex}` },
    });
    expect(theirs.status).toBe(403);
    expect((await fetch(`${gw.url}${url}`)).status).toBe(401);
    const made = await fetch(`${gw.url}/api/v1/files/file_00000000000000000000000000`, {
      headers: { authorization: `Bearer ${acme}` },
    });
    expect(made.status).toBe(404);
    expect(((await made.json()) as { error: { code: string } }).error.code).toBe("file_not_found");
  });

  it("names cannot traverse; send_file cannot leave the workspace; a planted link at ~/inbox is not followed", async () => {
    const prefix = `rest traverse ${driver}`;
    llm.when(
      (r) => r.lastUserText.startsWith(prefix),
      (r) => ({
        toolCalls: [
          { name: "bash", input: { command: `cat ${inboxPath(r.lastUserText, "evil.csv")}` } },
        ],
      }),
      { toolCalls: [{ name: "send_file", input: { path: "../../../etc/passwd" } }] },
      { toolCalls: [{ name: "send_file", input: { path: "/etc/hostname" } }] },
      {
        toolCalls: [
          // (The virtual tier refuses links out of the workspace itself: there the link stays inside.)
          {
            name: "bash",
            input: {
              command: `rm -rf ~/inbox && mkdir -p ~/elsewhere && ln -s ${driver === "process" ? "/etc" : "/workspace/elsewhere"} ~/inbox; ln -s /etc/passwd ~/pw`,
            },
          },
        ],
      },
      { toolCalls: [{ name: "send_file", input: { path: "pw" } }] },
      (r) => ({ text: `Refusals: ${r.toolResults.map((t) => t.content).join(" | ")}` }),
    );
    const res = await sendWithFiles(gw, acme, { user: "u2", text: prefix }, [
      { name: "../../../etc/evil.csv", content: "x,y\n" },
    ]);
    const events = await collectEvents(res);
    const results = requestsFor(llm, prefix).flatMap((r) => r.toolResults);
    expect(results[0]?.content).toBe("x,y\n");
    // Told the cleaned name only: nothing of the traversal reaches the agent.
    expect(requestsFor(llm, prefix)[0]!.lastUserText).toMatch(/\/evil\.csv \(name: evil\.csv,/);
    expect(requestsFor(llm, prefix)[0]!.lastUserText).not.toContain("../");
    expect(results[1]?.content).toMatch(/outside the workspace/);
    expect(results[2]?.content).toMatch(/outside the workspace/);
    expect(results[4]?.content).toMatch(/outside the workspace|does not exist/);
    expect(events.some((e) => e.type === "file")).toBe(false);

    // ~/inbox is now a link to /etc: the next upload is refused, not written through it.
    const next = `rest after the link ${driver}`;
    llm.when(
      (r) => r.lastUserText.startsWith(next),
      (r) => ({ text: r.lastUserText.includes("not saved") ? "refused" : "written" }),
    );
    const again = await collectEvents(
      await sendWithFiles(gw, acme, { user: "u2", text: next }, [
        { name: "passwd", content: "pwned\n" },
      ]),
    );
    const notice = again.find((e) => e.type === "notice");
    expect(notice).toMatchObject({ level: "warn" });
    expect((notice as { text: string }).text).toMatch(
      /passwd: not saved: ~\/inbox is not a folder/,
    );
    expect(again.at(-1)).toMatchObject({ type: "done", text: "refused" });
  });

  it("keeps a conversation's inbox within its limit; the agent frees room by deleting", async () => {
    const prefix = `rest fill ${driver}`;
    const part = { content: Buffer.alloc(700 * 1024, 1), type: "application/octet-stream" };
    const send = async (n: number) => {
      // (A scripted answer is used once: one per message.)
      llm.when(
        (r) => r.lastUserText.startsWith(`${prefix} ${n}`),
        (r) => ({ text: r.lastUserText.includes("inbox is full") ? "full" : "saved" }),
      );
      return (
        await collectEvents(
          await sendWithFiles(gw, acme, { user: "u4", text: `${prefix} ${n}` }, [
            { name: `part${n}.bin`, ...part },
          ]),
        )
      ).at(-1);
    };
    expect(await send(1)).toMatchObject({ type: "done", text: "saved" });
    expect(await send(2)).toMatchObject({ type: "done", text: "full" });
    llm.when(
      (r) => r.lastUserText.startsWith(`${prefix} clean`),
      {
        toolCalls: [{ name: "bash", input: { command: "rm -r ~/inbox" } }],
      },
      { text: "cleaned" },
    );
    await collectEvents(await sendWithFiles(gw, acme, { user: "u4", text: `${prefix} clean` }, []));
    expect(await send(3)).toMatchObject({ type: "done", text: "saved" });
  });

  it("refuses too large, too many and unaccepted files before anything is queued", async () => {
    const big = await sendWithFiles(gw, acme, { user: "u3", text: "big" }, [
      { name: "big.txt", content: Buffer.alloc(1024 * 1024 + 1, 97) },
    ]);
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: { code: string } }).error.code).toBe("file_too_large");
    const many = await sendWithFiles(gw, acme, { user: "u3", text: "many" }, [
      { name: "a.txt", content: "a" },
      { name: "b.txt", content: "b" },
      { name: "c.txt", content: "c" },
    ]);
    expect(many.status).toBe(413);
    expect(((await many.json()) as { error: { code: string } }).error.code).toBe("too_many_files");
    const pdf = await sendWithFiles(gw, acme, { user: "u3", text: "pdf" }, [
      { name: "doc.pdf", content: "%PDF-1.4", type: "application/pdf" },
    ]);
    expect(pdf.status).toBe(415);
    expect(((await pdf.json()) as { error: { code: string } }).error.code).toBe(
      "file_type_refused",
    );
    // The body is bounded while read: files × their limit + 1 MiB here, 1 MiB on other routes.
    const multipart = {
      "content-type": "multipart/form-data; boundary=x",
      authorization: `Bearer ${acme}`,
    };
    const endless = await sendFiller(`${gw.url}/api/v1/agents/default/messages`, {
      totalBytes: 8 * 1024 * 1024,
      sized: false,
      headers: multipart,
    });
    expect(endless.status).toBe(413);
    const elsewhere = await sendFiller(`${gw.url}/api/v1/agents`, {
      totalBytes: 2 * 1024 * 1024,
      sized: true,
      headers: multipart,
    });
    expect(elsewhere.status).toBe(413);
  });
});
