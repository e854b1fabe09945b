import type { GatewayProcess, MockLlm } from "@lobu/testkit";
import { describe, expect, it } from "vitest";
import { conversationsOf, drainedQueue, historyOf, queueDepth, slowText } from "./helpers.ts";

/**
 * What every chat platform adapter must do, checked the same way for each:
 * a person talks to the bot in a direct conversation through the platform's
 * emulator (packages/testkit), and a real gateway with real sandboxes
 * answers. A new platform gets its emulator, a PlatformDriver for it
 * (test/platforms/drivers/<id>.ts) and one line in conformance.test.ts.
 * Platform-specific behaviour (threads, groups, installs, Mini Apps) stays
 * in that platform's own test file.
 */

/** A message the bot posted, as the person sees it. */
export interface ChatMessage {
  id: string;
  /** Everything the message shows, as plain text (blocks and notes joined by blank lines). */
  text: string;
  /** How often it was edited after it was posted. */
  edits: number;
  /** Answer buttons (they answer a request), by label. */
  buttons: string[];
  /** The streaming reply's Stop buttons, by label (platforms that show them). */
  stops?: string[];
  /** Where its link buttons lead. */
  links: string[];
  /** The message it answers (quotes), where the platform shows that. */
  replyTo?: string;
}

/** One delivery the platform made to the gateway, and how the gateway answered it. */
export interface Delivery {
  status: number;
}

export interface PlatformDriver<D extends Delivery = Delivery> {
  /** The platform's id (`[platforms.<id>]`, Origin.platform). */
  readonly platform: string;
  /** The streaming reply carries Stop buttons (shared/stop.ts) on this platform. */
  readonly showsStopButtons?: boolean;
  /** What a person writes to get their settings link (not a message for the agent). */
  readonly settingsCommand: string;
  /**
   * The platform lets a bot edit its messages: replies stream by editing,
   * and an answered card loses its buttons. Where it cannot (WhatsApp), the
   * finished reply is sent once, and a card's outcome follows as a reply to it.
   */
  readonly editsMessages: boolean;
  /**
   * Start the emulator; returns the `[platforms.<id>]` lines of lobu.toml
   * (streaming fast enough for edits to be seen) and the environment that
   * points the platform at the emulator.
   */
  start(): Promise<{ toml: string[]; env: Record<string, string | undefined> }>;
  /** The gateway listens: point the platform at it (Request URL, webhook). */
  connect(gw: GatewayProcess): Promise<void>;
  close(): Promise<void>;

  /** The platform's user id of the n-th person (each test talks as its own person). */
  person(n: number): string;
  /** The person writes `text` to the bot in their direct conversation. */
  send(user: string, text: string): Promise<D>;
  /** The same message from someone who cannot prove to be the platform (a forged signature or secret). */
  forge(user: string, text: string): Promise<Delivery>;
  /** The platform delivers `d` again, as it does after a failed or late answer. */
  redeliver(d: D): Promise<Delivery>;
  /** Someone who captured `d` sends it again, byte for byte. */
  replay(d: D): Promise<Delivery>;
  /** The bot's messages in the person's direct conversation, oldest first. */
  messages(user: string): ChatMessage[];
  /** The person clicks the answer button `label` on `message`. */
  click(user: string, message: ChatMessage, label: string): Promise<void>;
  /**
   * The platform refuses the next edit of a message (where it cannot edit,
   * the next reply sent) with its rate limit (retry after 1 s).
   */
  rateLimitNextEdit(): void;
  /** The platform answered that call with its rate limit. */
  sawRateLimit(): boolean;
  /**
   * The next calls that post or edit a message fail the ways the platform
   * fails: an outage (5xx), its own error answer for "try again"
   * (`ok:false`), and a rate limit with a Retry-After of some seconds. A
   * driver whose emulator cannot fail that way leaves it out (the test is
   * skipped for it).
   */
  failNextDeliveries?(): void;
  /** Every failure failNextDeliveries set up was met (the gateway got past all of them). */
  deliveryFailuresUsed?(): boolean;
  /** Message text longer than `chars` is refused as too long (undefined: the platform's limit). */
  limitText?(chars: number | undefined): void;
  /** Wait until `predicate` returns something (the emulator's change signal). */
  waitFor<T>(predicate: () => T | undefined | null | false, description: string): Promise<T>;
  /** Attachments in, files out, where the platform carries files. */
  readonly files?: FileDriver;
}

/** A file the person attaches. */
export interface ChatFile {
  name: string;
  content: Buffer;
  mimeType: string;
}

/** A file the bot posted into the person's direct conversation. */
export interface PostedFile {
  name: string;
  data: Buffer;
  caption?: string;
}

/**
 * Files in and out (optional: a platform without files skips those tests;
 * its adapter then has no `files` capability).
 */
export interface FileDriver {
  /** The person writes `text` with `file` attached. */
  sendFile(user: string, text: string, file: ChatFile): Promise<Delivery>;
  /** Files the bot posted in the person's direct conversation, oldest first. */
  files(user: string): PostedFile[];
}

export interface ConformanceWorld {
  gw: GatewayProcess;
  llm: MockLlm;
}

/**
 * The conformance suite for one platform. `world` is read when the tests
 * run (the gateway starts in the caller's beforeAll); the gateway's
 * lobu.toml must include ASK_BASH_TOML (bash asks first) and FILES_TOML
 * (1 MiB per file). The tests that
 * reach the agent talk as one person (one sandbox), each looking only at
 * what its own message brought.
 */
export function describeConformance<D extends Delivery>(
  driver: PlatformDriver<D>,
  world: () => ConformanceWorld,
): void {
  const d = driver;
  const talker = () => d.person(1);
  const userTurns = async (user: string) => {
    const [conv] = await conversationsOf(world().gw, user);
    return conv ? (await historyOf(world().gw, conv.id)).filter((h) => h.role === "user") : [];
  };
  /** The bot's messages from now on, in the person's direct conversation. */
  const from = (user: string) => {
    const seen = d.messages(user).length;
    return () => d.messages(user).slice(seen);
  };
  const reply = (fresh: () => ChatMessage[], text: string) =>
    d.waitFor(() => fresh().find((m) => m.text === text), `the reply "${text}"`);
  /** The message that shows `text` (notices with it, in the same message). */
  const reply_ = (fresh: () => ChatMessage[], text: string) =>
    d.waitFor(() => fresh().find((m) => m.text.includes(text)), `a message with "${text}"`);
  const card = (fresh: () => ChatMessage[]) =>
    d.waitFor(() => fresh().find((m) => m.buttons.length > 0), "a card with answer buttons");
  /** The card shows its outcome: edited in place, or (no edits) in a reply to it. */
  const closed = async (fresh: () => ChatMessage[], card: ChatMessage, outcome: RegExp) => {
    if (d.editsMessages) {
      const answered = fresh().find((m) => m.id === card.id);
      expect(answered?.buttons).toEqual([]);
      expect(answered?.text).toMatch(outcome);
      return;
    }
    await d.waitFor(
      () => fresh().find((m) => m.replyTo === card.id && outcome.test(m.text)),
      `the outcome ${outcome} below the card`,
    );
  };

  describe(`${d.platform}: the adapter contract`, () => {
    it("refuses a forged delivery (401) and stores nothing", async () => {
      const user = d.person(2);
      const before = await drainedQueue(world().gw);
      expect((await d.forge(user, "let me in")).status).toBe(401);
      expect(await conversationsOf(world().gw, user)).toHaveLength(0);
      expect(await queueDepth(world().gw)).toBe(before);
    });

    it("streams a reply by editing the message it posted (or sends it once, finished)", async () => {
      const user = talker();
      const fresh = from(user);
      const answer = `${d.platform} streams this reply, edited in place as the agent writes it.`;
      world().llm.when((r) => r.lastUserText === `stream please ${user}`, slowText(answer));
      expect((await d.send(user, `stream please ${user}`)).status).toBe(200);
      const shown = await reply(fresh, answer);
      if (d.editsMessages) expect(shown.edits).toBeGreaterThanOrEqual(2);
      else expect(shown.edits).toBe(0);
      expect(fresh()).toHaveLength(1);
    });

    it("handles a message once: a redelivery and a replayed copy add nothing", async () => {
      const user = talker();
      const fresh = from(user);
      const turns = (await userTurns(user)).length;
      world().llm.when(
        (r) => r.lastUserText === `once please ${user}`,
        slowText("Exactly once.", 4, 100),
      );
      const sent = await d.send(user, `once please ${user}`);
      expect(sent.status).toBe(200);
      expect((await d.redeliver(sent)).status).toBe(200);
      await reply(fresh, "Exactly once.");
      // A copy is refused (409) or acknowledged as already handled (200); never handled again.
      expect([200, 409]).toContain((await d.replay(sent)).status);
      expect(await userTurns(user)).toHaveLength(turns + 1);
      expect(fresh()).toHaveLength(1);
    });

    it("asks a question with buttons and takes the answer from a click", async () => {
      const user = talker();
      const fresh = from(user);
      world().llm.when(
        (r) => r.lastUserText === `ask me ${user}`,
        {
          toolCalls: [
            { name: "ask_user", input: { question: "Which color?", options: ["Red", "Blue"] } },
          ],
        },
        (r) => ({ text: `Going with it. ${r.toolResults[0]?.content ?? ""}` }),
      );
      await d.send(user, `ask me ${user}`);
      const question = await card(fresh);
      expect(question.text).toContain("Which color?");
      expect(question.buttons).toEqual(["Red", "Blue"]);
      await d.click(user, question, "Blue");
      await reply(fresh, "Going with it. The user answered: Blue");
      await closed(fresh, question, /✅ \W*Blue\W* \(answered by /);
    });

    it("asks before running a tool; Approve runs it", async () => {
      const user = talker();
      const fresh = from(user);
      world().llm.when(
        (r) => r.lastUserText === `run it ${user}`,
        { toolCalls: [{ name: "bash", input: { command: "echo conformance-approved" } }] },
        (r) => ({ text: `Result: ${r.toolResults[0]?.content.trim()}` }),
      );
      await d.send(user, `run it ${user}`);
      const approval = await card(fresh);
      expect(approval.text).toContain("echo conformance-approved");
      expect(approval.buttons).toEqual(expect.arrayContaining(["Approve", "Deny"]));
      await d.click(user, approval, "Approve");
      await reply(fresh, "Result: conformance-approved");
      await closed(fresh, approval, /✅ \W*Approve\W*/);
    });

    it.skipIf(!d.showsStopButtons)(
      "stops a running turn from the Stop button on its streaming reply",
      async () => {
        const user = d.person(4);
        const fresh = from(user);
        const text = `stop me ${user}`;
        // A reply that would take a minute to stream: it is stopped long before.
        world().llm.when((r) => r.lastUserText === text, slowText("word ".repeat(300), 300, 200));
        await d.send(user, text);
        const live = await d.waitFor(
          () => fresh().find((m) => (m.stops?.length ?? 0) > 0 && m.text.includes("word")),
          "the streaming reply with its Stop buttons",
        );
        expect(live.stops).toEqual(["⏹ Stop", "Stop and clear queue"]);
        await d.click(user, live, "⏹ Stop");
        const stopped = await d.waitFor(
          () => fresh().find((m) => m.id === live.id && /⏹️ Stopped by/.test(m.text)),
          "the reply saying it was stopped",
        );
        expect(stopped.stops).toEqual([]);
        // The model call was aborted, not left to finish (checked until it is: the
        // emulator's waitFor re-checks only on the platform's own changes).
        const deadline = Date.now() + 30_000;
        const aborted = () =>
          world().llm.requests.some((r) => r.lastUserText === text && r.aborted);
        while (!aborted() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        expect(aborted()).toBe(true);
      },
    );

    it.skipIf(!d.failNextDeliveries)(
      "delivers the final reply through outages, error answers and long rate limits",
      async () => {
        const user = d.person(5);
        const fresh = from(user);
        const answer = `${d.platform} gets this reply through every failure.`;
        world().llm.when((r) => r.lastUserText === `fail me ${user}`, { text: answer });
        d.failNextDeliveries?.();
        await d.send(user, `fail me ${user}`);
        await reply(fresh, answer);
        expect(d.deliveryFailuresUsed?.()).toBe(true);
      },
    );

    it.skipIf(!d.limitText)(
      "splits a reply the platform finds too long, and loses none of it",
      async () => {
        const user = d.person(6);
        const fresh = from(user);
        const paragraphs = Array.from(
          { length: 8 },
          (_, i) => `Paragraph ${i + 1} ${"of a long reply ".repeat(8)}ends here.`,
        );
        world().llm.when((r) => r.lastUserText === `long reply ${user}`, {
          text: paragraphs.join("\n\n"),
        });
        d.limitText?.(400);
        try {
          await d.send(user, `long reply ${user}`);
          await d.waitFor(
            () => fresh().some((m) => m.text.includes("Paragraph 8")) && fresh(),
            "the last part of the reply",
          );
        } finally {
          d.limitText?.(undefined);
        }
        const shown = fresh()
          .map((m) => m.text)
          .join("\n");
        for (let i = 1; i <= 8; i++) expect(shown).toContain(`Paragraph ${i} `);
        expect(fresh().length).toBeGreaterThan(1);
      },
    );

    it("sends the settings link to the person, without asking the agent", async () => {
      const user = d.person(3);
      await d.send(user, d.settingsCommand);
      const link = await d.waitFor(
        () =>
          d
            .messages(user)
            .flatMap((m) => m.links)
            .find((url) => /\/settings\/claim\//.test(url)),
        "the settings link",
      );
      expect(new URL(link).pathname).toMatch(/^\/settings\/claim\/[\w-]+/);
      expect(await conversationsOf(world().gw, user)).toHaveLength(0);
    });

    const files = d.files;
    // Files use people of their own: their uploads and notes count against no other test's pacing.
    it.runIf(files)("takes a document into the sandbox and sends a result file back", async () => {
      if (!files) return;
      const user = d.person(4);
      const fresh = from(user);
      const csv = `name,score\n${user},42\n`;
      const pathIn = (text: string) => /\/workspace\/inbox\/\S+\.csv/.exec(text)?.[0] ?? "none";
      world().llm.when(
        (r) => r.lastUserText.startsWith(`total the scores ${user}`),
        (r) => ({ toolCalls: [{ name: "read", input: { path: pathIn(r.lastUserText) } }] }),
        (r) => ({
          toolCalls: [
            {
              name: "write",
              input: { path: "out/total.txt", content: `read: ${r.toolResults[0]?.content}` },
            },
          ],
        }),
        {
          toolCalls: [
            { name: "send_file", input: { path: "out/total.txt", caption: "Your total" } },
          ],
        },
        (r) => ({ text: `Done. ${r.toolResults[0]?.content ?? ""}` }),
      );
      const sent = await files.sendFile(user, `total the scores ${user}`, {
        name: "scores.csv",
        content: Buffer.from(csv),
        mimeType: "text/csv",
      });
      expect(sent.status).toBe(200);
      const posted = await d.waitFor(
        () => files.files(user).find((f) => f.name === "total.txt"),
        "the result file",
      );
      expect(posted.data.toString()).toContain(`${user},42`);
      expect(posted.caption).toBe("Your total");
      await reply_(fresh, "Done. Sent total.txt");
    });

    it.runIf(files)(
      "refuses a file over the limit with a message and answers the rest",
      async () => {
        if (!files) return;
        const user = d.person(5);
        const fresh = from(user);
        world().llm.when(
          (r) => r.lastUserText.startsWith(`too big ${user}`),
          (r) => ({ text: r.lastUserText.includes("not saved") ? "Told about it." : "Not told." }),
        );
        await files.sendFile(user, `too big ${user}`, {
          name: "huge.bin",
          content: Buffer.alloc(1024 * 1024 + 10, 1),
          mimeType: "application/octet-stream",
        });
        const reply = await reply_(fresh, "Told about it.");
        expect(reply.text).toMatch(/huge\.bin: not saved: it is larger than the 1 MiB limit/);
      },
    );

    it("waits out the platform's rate limit and still delivers the whole reply", async () => {
      const user = talker();
      const fresh = from(user);
      const answer = `${d.platform} slows down when it is told to, and the reply still arrives.`;
      world().llm.when((r) => r.lastUserText === `rate limit me ${user}`, slowText(answer));
      d.rateLimitNextEdit();
      await d.send(user, `rate limit me ${user}`);
      await reply(fresh, answer);
      expect(d.sawRateLimit()).toBe(true);
      expect(fresh()).toHaveLength(1);
    });
  });
}
