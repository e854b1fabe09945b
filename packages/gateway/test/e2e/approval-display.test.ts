import { spawn } from "node:child_process";
import { inputDigest } from "@lobu/core";
import {
  type GatewayProcess,
  LOBU_BIN,
  type MockLlm,
  type SlackEmulator,
  type SlackMessage,
  startMockLlm,
  startTelegramEmulator,
  type TelegramEmulator,
  type TelegramMessage,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ASK_BASH_TOML,
  PROVIDER_KEY,
  startSlackApp,
  startSlackGateway,
  telegramEnv,
  WAIT,
} from "../platforms/helpers.ts";
import { eventReader } from "../settings/helpers.ts";

/**
 * An approval shows exactly what runs, on every surface: a command padded with
 * 300 spaces so that `; rm -rf ~/x` falls off a clipped card reads the same in
 * the REST events, on Slack, on Telegram and in `lobu chat`, with the run of
 * spaces made visible; a longer input goes along as a file before Approve is
 * offered, and without that file only Deny is. Real gateway, real sandboxed
 * workers, the Slack and Telegram emulators and the mock LLM.
 */

const SLACK_SECRET = "slack-signing-secret-approval-display";
const SLACK_TOKEN = "xoxb-7777-8888-approval-display";
const TG_TOKEN = "7000000009:AAapproval-display-token";

/** The command a clipped card would show as just `echo hi`. */
const SNEAKY = `echo hi${" ".repeat(300)}; rm -rf ~/x`;
const SNEAKY_SHOWN = "command: echo hi⟦␠×300⟧; rm -rf ~/x";
/** Too long for any card: the end of it is only in the attached file. */
const LONG = `${Array.from({ length: 150 }, (_, i) => `echo line-${i}`).join("\n")}\nrm -rf ~/x # the end`;

let llm: MockLlm;
let slack: SlackEmulator;
let tg: TelegramEmulator;
let gw: GatewayProcess;

function scriptBash(text: string, command: string) {
  llm.when(
    (r) => r.lastUserText === text,
    { toolCalls: [{ name: "bash", input: { command } }] },
    (r) => ({ text: r.toolResults[0]?.isError ? "Not run." : "Ran it." }),
  );
}

function send(user: string, text: string) {
  return gw.api("/api/v1/agents/default/messages", {
    method: "POST",
    headers: { accept: "text/event-stream" },
    body: JSON.stringify({ user, channel: "display", text }),
  });
}

function answer(requestId: string, choice: string) {
  return gw.api(`/api/v1/requests/${requestId}/answer`, {
    method: "POST",
    body: JSON.stringify({ choice }),
  });
}

type Block = { type?: string; elements?: unknown[]; text?: { text: string } };

function blocksOf(m: SlackMessage | undefined): Block[] {
  return (m?.blocks ?? []) as Block[];
}

/** The literal text of a card's preformatted rich text block. */
function preformattedText(m: SlackMessage | undefined): string {
  return blocksOf(m)
    .filter((b) => b.type === "rich_text")
    .flatMap((b) => b.elements as { type: string; elements: { text: string }[] }[])
    .filter((e) => e.type === "rich_text_preformatted")
    .flatMap((e) => e.elements.map((t) => t.text))
    .join("");
}

function choicesOf(m: SlackMessage | undefined): string[] {
  return blocksOf(m)
    .filter((b) => b.type === "actions")
    .flatMap((b) => (b.elements as { action_id: string }[]).map((e) => e.action_id))
    .filter((id) => id.startsWith("lobu:"))
    .map((id) => id.split(":").at(-1)!);
}

function contextText(m: SlackMessage | undefined): string {
  return blocksOf(m)
    .filter((b) => b.type === "context")
    .flatMap((b) => (b.elements as { text?: string }[]).map((e) => e.text ?? ""))
    .join("\n");
}

async function slackCard(user: string, text: string): Promise<SlackMessage> {
  const im = slack.imChannel(user);
  await slack.dm({ user, text });
  return slack.waitFor(
    () => slack.messages(im.id).find((m) => choicesOf(m).length > 0 && !m.deleted),
    { ...WAIT, description: "the approval card" },
  );
}

async function slackDeny(user: string, card: SlackMessage): Promise<void> {
  const im = slack.imChannel(user);
  const deny = blocksOf(card)
    .filter((b) => b.type === "actions")
    .flatMap((b) => (b.elements as { action_id: string }[]).map((e) => e.action_id))
    .find((id) => id.endsWith(":deny"))!;
  await slack.clickButton({ user, channel: im.id, messageTs: card.ts, actionId: deny });
  await slack.waitFor(
    () => slack.messages(im.id).find((m) => blocksOf(m).some((b) => b.text?.text === "Not run.")),
    { ...WAIT, description: "the reply after Deny" },
  );
}

const tgUser = (id: number, first_name: string) => ({ id, first_name, username: first_name });

async function tgCard(id: number, name: string, text: string): Promise<TelegramMessage> {
  const from = tgUser(id, name);
  tg.userSends({ chat: { id, type: "private" }, from, text });
  return tg.waitFor(
    () =>
      tg
        .messages(id)
        // The card, not the streaming reply with its Stop buttons (docs/using.md).
        .find((m) =>
          m.replyMarkup?.inline_keyboard
            .flat()
            .some((b) => b.callback_data && !b.callback_data.startsWith("lobu-stop")),
        ),
    { ...WAIT, description: "the approval card" },
  );
}

function tgButtons(card: TelegramMessage): string[] {
  return card.replyMarkup?.inline_keyboard.flat().map((b) => b.text) ?? [];
}

async function tgDeny(id: number, name: string, card: TelegramMessage): Promise<void> {
  const data = card.replyMarkup?.inline_keyboard.flat().find((b) => b.text === "Deny")
    ?.callback_data as string;
  tg.clickCallback({ from: tgUser(id, name), chatId: id, messageId: card.messageId, data });
  await tg.waitFor(() => tg.messages(id).find((m) => m.text === "Not run."), {
    ...WAIT,
    description: "the reply after Deny",
  });
}

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: PROVIDER_KEY });
  slack = await startSlackApp({ signingSecret: SLACK_SECRET, botToken: SLACK_TOKEN });
  tg = await startTelegramEmulator({
    botToken: TG_TOKEN,
    botUsername: "lobu_display_bot",
    rateLimits: false,
  });
  gw = await startSlackGateway({
    slack,
    llm,
    toml: [
      ...ASK_BASH_TOML,
      "[platforms.slack]",
      'stream_interval = "200ms"',
      "[platforms.telegram]",
      'mode = "polling"',
      'stream_interval = "200ms"',
    ].join("\n"),
    env: {
      ...telegramEnv(tg, TG_TOKEN),
    },
  });
});

afterAll(async () => {
  await gw?.stop();
  await slack?.close();
  await tg?.close();
  await llm?.close();
});

describe("approval display: REST events", () => {
  it("carries the whole input, whitespace run visible, derived and bound by the gateway", async () => {
    scriptBash("rest sneaky", SNEAKY);
    const events = eventReader(await send("ada", "rest sneaky"));
    const card = await events.until("approval_request");
    expect(card.display).toBe(SNEAKY_SHOWN);
    expect(card.displayComplete).toBe(true);
    // The one-line summary names the size, never a part of the input.
    expect(card.summary).toMatch(/^bash: 1 line, /);
    expect(card.summary).not.toContain("echo");
    expect(card.inputDigest).toBe(inputDigest({ command: SNEAKY }));
    expect((await answer(card.requestId as string, "approve")).status).toBe(200);
    expect((await events.rest()).at(-1)).toMatchObject({ type: "done", text: "Ran it." });
  });

  it("the answer is bound to the input's digest (the worker checks it before running)", async () => {
    scriptBash("rest digest", "echo digest-bound");
    const events = eventReader(await send("ada", "rest digest"));
    const card = await events.until("approval_request");
    const res = await answer(card.requestId as string, "approve");
    const body = (await res.json()) as { request: { answer: { inputDigest?: string } } };
    expect(body.request.answer.inputDigest).toBe(inputDigest({ command: "echo digest-bound" }));
    expect((await events.rest()).at(-1)).toMatchObject({ type: "done", text: "Ran it." });
  });
});

describe("approval display: Slack", () => {
  it("shows the full command literally, the run of spaces made visible", async () => {
    scriptBash("slack sneaky", SNEAKY);
    const card = await slackCard("USNEAKY", "slack sneaky");
    expect(preformattedText(card)).toBe(SNEAKY_SHOWN);
    expect(contextText(card)).toContain("⟦…⟧");
    expect(choicesOf(card)).toEqual(["approve", "deny", "always"]);
    await slackDeny("USNEAKY", card);
  });

  it("attaches a long input as a file before the card, which says so", async () => {
    scriptBash("slack long", LONG);
    const card = await slackCard("ULONG", "slack long");
    const file = slack.uploads.find((f) => f.name.startsWith("approval-"));
    expect(file?.data.toString("utf8")).toContain("rm -rf ~/x # the end");
    expect(file?.data.toString("utf8")).toContain("  echo line-149");
    expect(Number(file?.messageTs) < Number(card.ts)).toBe(true);
    expect(preformattedText(card)).not.toContain("the end");
    expect(contextText(card)).toContain(`attached above as \`${file?.name}\``);
    expect(choicesOf(card)).toEqual(["approve", "deny", "always"]);
    await slackDeny("ULONG", card);
  });

  it("offers only Deny when the full input could not be attached", async () => {
    scriptBash("slack long unattached", LONG);
    slack.failNext("files.getUploadURLExternal", "missing_scope");
    const card = await slackCard("UNOFILE", "slack long unattached");
    expect(choicesOf(card)).toEqual(["deny"]);
    expect(contextText(card)).toContain("cannot be approved from this chat");
    await slackDeny("UNOFILE", card);
  });
});

describe("approval display: Telegram", () => {
  it("shows the full command, the run of spaces made visible", async () => {
    scriptBash("telegram sneaky", SNEAKY);
    const card = await tgCard(2001, "Tia", "telegram sneaky");
    expect(card.text).toContain(SNEAKY_SHOWN);
    expect(card.entities?.some((e) => e.type === "pre")).toBe(true);
    expect(tgButtons(card)).toEqual(["Approve", "Deny", "Always allow"]);
    await tgDeny(2001, "Tia", card);
  });

  it("sends a long input as a document before the card", async () => {
    scriptBash("telegram long", LONG);
    const card = await tgCard(2002, "Tom", "telegram long");
    const doc = tg.messages(2002).find((m) => m.document?.fileName?.startsWith("approval-"));
    expect(doc?.document?.data.toString("utf8")).toContain("rm -rf ~/x # the end");
    expect(doc!.messageId < card.messageId).toBe(true);
    expect(card.text).not.toContain("the end");
    expect(card.text).toContain(`attached above as ${doc?.document?.fileName}`);
    expect(tgButtons(card)).toEqual(["Approve", "Deny", "Always allow"]);
    await tgDeny(2002, "Tom", card);
  });

  it("offers only Deny when the document could not be sent", async () => {
    scriptBash("telegram long unsent", LONG);
    tg.failNext("sendDocument", "Bad Request: file is too big");
    const card = await tgCard(2003, "Ted", "telegram long unsent");
    expect(tgButtons(card)).toEqual(["Deny"]);
    await tgDeny(2003, "Ted", card);
  });
});

describe("approval display: lobu chat", () => {
  it("prints the whole input before asking", async () => {
    scriptBash("cli sneaky", SNEAKY);
    const child = spawn(
      process.execPath,
      [
        LOBU_BIN,
        "chat",
        ...["--gateway", gw.url, "--token", gw.token, "--user", "cleo", "--channel", "cli"],
        ...["--message", "cli sneaky"],
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    let stdout = "";
    child.stdout.on("data", (d) => (stdout += d));
    const exited = new Promise<number | null>((r) => child.on("exit", r));
    const requestId = await new Promise<string>((resolve, reject) => {
      child.stderr.on("data", (d) => {
        stderr += d;
        const m = /lobu answer (rq_\w+)/.exec(stderr);
        if (m) resolve(m[1]!);
      });
      child.on("exit", () => reject(new Error(`lobu chat exited early:\n${stderr}`)));
    });
    expect(stderr).toContain(`Approve bash with exactly this input?\n    ${SNEAKY_SHOWN}\n`);
    expect(stderr).not.toContain(" ".repeat(20));
    await answer(requestId, "deny");
    expect(await exited).toBe(0);
    expect(stdout).toContain("Not run.");
  });
});
