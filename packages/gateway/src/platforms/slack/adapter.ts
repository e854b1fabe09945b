import { type AgentEvent, errorBody, isLobuError } from "@lobu/core";
import { bestEffort } from "@lobu/core/best-effort";
import { SocketModeClient } from "@slack/socket-mode";
import type { Context } from "hono";
import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import {
  type AdapterContext,
  type PlatformAdapter,
  REDELIVERY_MEMORY_MS,
} from "../shared/adapter.ts";
import { Background } from "../shared/background.ts";
import { messageText, refusalText } from "../shared/inbound.ts";
import { type CapabilityRequest, withoutPublicLinks } from "../shared/private-links.ts";
import { outcomeMarkdown } from "../shared/requests.ts";
import type { PlatformRoutes } from "../shared/routes.ts";
import { TurnViews } from "../shared/turn-view.ts";
import { type Block, closedCard, parseActionId, section, settingsBlocks } from "./blocks.ts";
import { slackCall, slackLogger } from "./client.ts";
import type { SlackSettings } from "./config.ts";
import {
  classify,
  filesOf,
  isSettingsCommand,
  parseSlackRequest,
  type SlackMessageEvent,
  type SlackRequest,
} from "./inbound.ts";
import { toMrkdwnSections } from "./mrkdwn.ts";
import { oauthRoutes } from "./oauth.ts";
import { postToResponseUrl, responseUrlAllowed } from "./respond.ts";
import { checkSignatureHeaders, SIGNATURE_MEMORY_MS, verifySlackSignature } from "./signature.ts";
import { type SlackCard, type SlackLive, SlackSurface } from "./surface.ts";
import { type Workspace, Workspaces } from "./workspaces.ts";

/** A thread stays open for follow-ups without a mention this long after the last mention. */
const THREAD_TTL_MS = 30 * 86_400_000;
const NAME_TTL_MS = 3_600_000;
const NAME_LOOKUP_MS = 1_500;
const NAME_CACHE_MAX = 10_000;

const threadKey = (team: string, channel: string, threadTs: string, user: string) =>
  `thread:${team}:${channel}:${threadTs}:${user}`;

interface EventEnvelope {
  type: string;
  team_id?: string;
  /** tokens_revoked names the revoked tokens' users: `bot` for bot tokens, `oauth` for user tokens. */
  event?: SlackMessageEvent & { tokens?: { bot?: string[]; oauth?: string[] } };
  challenge?: string;
}

interface BlockActionsPayload {
  type: string;
  user?: { id: string; username?: string; name?: string; team_id?: string };
  team?: { id: string } | null;
  channel?: { id: string };
  container?: { channel_id?: string; message_ts?: string; thread_ts?: string };
  message?: { ts?: string; text?: string; blocks?: Block[]; thread_ts?: string };
  actions?: { action_id: string; value?: string; text?: { text?: string } }[];
}

/**
 * Slack: the Events API over HTTP (or Socket Mode), Block Kit replies that
 * stream by editing one message, buttons for requests, OAuth installs into
 * several workspaces.
 */
export class SlackAdapter implements PlatformAdapter {
  readonly platform = "slack";
  readonly #settings: SlackSettings;
  readonly #views = new TurnViews<SlackLive, SlackCard>();
  readonly #names = new Map<string, { name: string | undefined; at: number }>();
  #ctx!: AdapterContext;
  #log!: Logger;
  #workspaces!: Workspaces;
  #background!: Background;
  #socket: SocketModeClient | undefined;

  constructor(settings: SlackSettings) {
    this.#settings = settings;
  }

  async start(ctx: AdapterContext): Promise<void> {
    this.#ctx = ctx;
    this.#log = ctx.log;
    this.#background = new Background(ctx.log);
    this.#workspaces = new Workspaces(this.#settings.apiUrl, ctx.log, ctx);
    if (this.#settings.botToken) {
      const ws = await this.#workspaces.addEnvToken(this.#settings.botToken);
      this.#log.info(
        { team: ws.teamName ?? ws.teamId, botUserId: ws.botUserId },
        "Slack bot connected",
      );
    }
    if (this.#settings.mode === "http") this.#httpRoutes(ctx.routes);
    oauthRoutes(ctx.routes, {
      settings: this.#settings,
      ctx,
      workspaces: this.#workspaces,
      log: this.#log,
    });
    if (this.#settings.mode === "socket") await this.#startSocket();
  }

  async stop(): Promise<void> {
    const socket = this.#socket;
    this.#socket = undefined;
    await socket
      ?.disconnect()
      .catch(bestEffort(this.#log, "Slack Socket Mode not disconnected cleanly"));
    await this.#background?.settle();
    this.#views.clear();
  }

  async deliver(
    origin: Origin,
    turn: { messageId: string; events: AsyncIterable<AgentEvent> },
  ): Promise<void> {
    const ws = await this.#workspaces.get(origin.workspace);
    if (!ws) {
      this.#log.error(
        { team: origin.workspace },
        "no bot token for this Slack workspace; the reply cannot be posted",
      );
      return;
    }
    // Outside a DM the card is public: its settings link goes to the person as an ephemeral instead.
    const events = origin.isDirect
      ? turn.events
      : withoutPublicLinks(turn.events, (request) =>
          this.#background.run(
            () => this.#sendRequestLink(ws, origin, request),
            "could not send the settings link for a request",
          ),
        );
    await this.#views.show(
      { messageId: turn.messageId, events },
      { platform: this.platform, intervalMs: this.#settings.streamIntervalMs, log: this.#log },
      () =>
        new SlackSurface(ws.client, origin, {
          maxInlineChars: this.#settings.maxInlineChars,
          settingsUrl: async () =>
            origin.isDirect ? this.#ctx.settingsLink(origin).catch(() => undefined) : undefined,
          log: this.#log,
        }),
    );
  }

  async notify(origin: Origin, text: string): Promise<void> {
    const ws = await this.#workspaces.get(origin.workspace);
    if (!ws) return;
    await slackCall(() =>
      ws.client.chat.postMessage({
        channel: origin.channelId,
        ...(origin.threadId ? { thread_ts: origin.threadId } : {}),
        text,
        blocks: toMrkdwnSections(text)
          .slice(0, 10)
          .map((t) => section(t)),
      }),
    );
  }

  // ---------------------------------------------------------------- inbound

  #httpRoutes(routes: PlatformRoutes): void {
    const secret = this.#settings.signingSecret as string;
    routes.post("/slack/events", async (c) => {
      const headers = {
        timestamp: c.req.header("x-slack-request-timestamp"),
        signature: c.req.header("x-slack-signature"),
      };
      // Refused on its headers alone (unsigned, stale) before a byte of the body is read.
      const early = checkSignatureHeaders(headers);
      if (!early.ok) return this.#unsigned(c, early.reason);
      const raw = await c.req.text(); // at most the platform body limit
      const check = verifySlackSignature(secret, headers, raw);
      if (!check.ok) return this.#unsigned(c, check.reason);
      const request = parseSlackRequest(c.req.header("content-type"), raw);
      // A signature is accepted once, on every gateway sharing the store: a captured copy does nothing.
      const proof = `signature:${headers.timestamp}:${headers.signature}`;
      if (!(await this.#ctx.once.claim(proof, SIGNATURE_MEMORY_MS)))
        return this.#replayed(c, request.kind);
      const retry = c.req.header("x-slack-retry-num");
      if (retry)
        this.#log.debug(
          { retry, reason: c.req.header("x-slack-retry-reason") },
          "Slack redelivery",
        );
      try {
        return await this.#signedRequest(c, request);
      } catch (err) {
        // Not handled: Slack's redelivery of this very request must get through.
        await this.#ctx.once
          .release(proof)
          .catch(
            bestEffort(
              this.#log,
              "failed request stays marked handled: Slack's redelivery of it will be dropped",
              { kind: request.kind },
              { level: "error" },
            ),
          );
        throw err;
      }
    });
  }

  #unsigned(c: Context, reason: string): Response {
    this.#log.warn(
      { reason },
      "refused a Slack request that is not signed with SLACK_SIGNING_SECRET",
    );
    return c.json(errorBody("bad_signature", `Slack signature check failed: ${reason}`), 401);
  }

  #replayed(c: Context, kind: SlackRequest["kind"]): Response {
    const retry = c.req.header("x-slack-retry-num");
    this.#ctx.audit("replay_refused", { kind, ...(retry ? { retry } : {}) });
    // Slack's own redelivery of an event it already sent: acknowledge it, so Slack stops; it was handled.
    if (retry !== undefined && kind === "event") {
      this.#log.info({ retry }, "Slack redelivered an event already handled; acknowledged");
      return c.body(null, 200);
    }
    this.#log.warn({ kind }, "refused a copy of a Slack request that was already accepted");
    return c.json(
      errorBody(
        "replayed_request",
        "this signed Slack request was already accepted; a copy of it is refused",
        { hint: "Slack signs every request it sends anew. Send a freshly signed request." },
      ),
      409,
    );
  }

  async #signedRequest(c: Context, request: SlackRequest): Promise<Response> {
    switch (request.kind) {
      case "interaction": {
        let parsed: BlockActionsPayload;
        try {
          parsed = JSON.parse(request.payload) as BlockActionsPayload;
        } catch {
          return c.json(errorBody("malformed_json", "payload is not JSON"), 400);
        }
        await this.#interaction(parsed);
        return c.body(null, 200);
      }
      case "command": {
        const reply = await this.#command(request.fields);
        return reply ? c.json(reply) : c.body(null, 200);
      }
      case "event": {
        let body: EventEnvelope;
        try {
          body = JSON.parse(request.raw) as EventEnvelope;
        } catch {
          return c.json(errorBody("malformed_json", "body is not JSON"), 400);
        }
        if (body.type === "url_verification") return c.json({ challenge: body.challenge });
        if (body.type === "event_callback") await this.#envelope(body);
        return c.body(null, 200);
      }
      case "unknown":
        return c.json(
          errorBody("bad_request", "expected an interaction payload or a slash command"),
          400,
        );
    }
  }

  async #startSocket(): Promise<void> {
    const socket = new SocketModeClient({
      appToken: this.#settings.appToken as string,
      logger: slackLogger(this.#log),
      clientOptions: { slackApiUrl: this.#settings.apiUrl },
    });
    socket.on(
      "slack_event",
      async ({
        ack,
        type,
        body,
      }: {
        ack: (response?: unknown) => Promise<void>;
        type: string;
        body: unknown;
      }) => {
        try {
          if (type === "events_api") await this.#envelope(body as EventEnvelope);
          else if (type === "interactive") await this.#interaction(body as BlockActionsPayload);
          else if (type === "slash_commands") {
            const reply = await this.#command(body as Record<string, string>);
            await (reply ? ack(reply) : ack());
            return;
          }
          await ack();
        } catch (err) {
          // Not acknowledged: Slack delivers the envelope again.
          this.#log.error({ err, type }, "could not handle a Socket Mode envelope");
        }
      },
    );
    try {
      await socket.start();
    } catch (err) {
      await socket
        .disconnect()
        .catch(
          bestEffort(
            this.#log,
            "Socket Mode client not disconnected after a failed start",
            {},
            { level: "debug" },
          ),
        );
      const code = (err as { data?: { error?: string } }).data?.error ?? (err as Error).message;
      throw new Error(
        `Slack Socket Mode could not connect (${code}); check SLACK_APP_TOKEN (xapp-…, scope connections:write) and that Socket Mode is enabled for the app`,
      );
    }
    this.#socket = socket;
    this.#log.info("Slack Socket Mode connected");
  }

  async #envelope(body: EventEnvelope): Promise<void> {
    const event = body.event;
    const teamId = body.team_id ?? event?.team;
    if (!event || !teamId) return;
    // A revoked user token leaves the bot token working; only a revoked bot token ends the install.
    const botRevoked = event.type === "tokens_revoked" && (event.tokens?.bot?.length ?? 0) > 0;
    if (event.type === "app_uninstalled" || botRevoked) {
      await this.#workspaces.remove(teamId);
      this.#log.info({ teamId }, "Slack app removed from a workspace");
      return;
    }
    if (event.type === "app_mention" || event.type === "message")
      await this.#message(teamId, event);
  }

  async #message(teamId: string, event: SlackMessageEvent): Promise<void> {
    const ws = await this.#workspaces.get(teamId);
    if (!ws) {
      this.#log.warn(
        { teamId },
        "Slack event from a workspace this gateway has no token for; install the app via /slack/install",
      );
      return;
    }
    const m = classify(event, ws.botUserId);
    if (m.kind === "ignore") {
      this.#log.debug({ reason: m.reason, type: event.type }, "ignoring Slack event");
      return;
    }
    const state = this.#ctx.state;
    if (m.kind === "followup") {
      if (!this.#settings.threadFollowups || !m.threadTs) return;
      if (!(await state.get(threadKey(teamId, m.channel, m.threadTs, m.user)))) return;
    }
    const files = filesOf(event);
    const userName = await this.#userName(ws, m.user);
    const origin: Origin = {
      platform: this.platform,
      workspace: teamId,
      channelId: m.channel,
      userId: m.user,
      isDirect: m.kind === "dm",
      messageRef: m.ts,
      ...(m.threadTs ? { threadId: m.threadTs } : {}),
      ...(userName ? { userName } : {}),
    };
    if (isSettingsCommand(m.text)) {
      // One link per message, however often Slack delivers it (app_mention and message, retries).
      if (
        await this.#ctx.once.claim(`settings:${teamId}:${m.channel}:${m.ts}`, REDELIVERY_MEMORY_MS)
      )
        this.#background.run(
          () => this.#sendSettings(ws, origin),
          "could not send the settings link",
        );
      return;
    }
    if (!m.text && files.length === 0) return;
    if (m.kind === "mention" && m.threadTs)
      await state.set(threadKey(teamId, m.channel, m.threadTs, m.user), "1", THREAD_TTL_MS);
    try {
      await this.#ctx.submit({
        origin,
        text: messageText(m.text, files),
        ...(files.length ? { files } : {}),
        // One person's message: Slack may send it as app_mention and message, and retry either.
        eventId: `${teamId}:${m.channel}:${m.ts}`,
        ...(this.#settings.agentId ? { agentId: this.#settings.agentId } : {}),
      });
    } catch (err) {
      if (isLobuError(err) && err.status < 500) {
        // The message can never be accepted: tell the person instead of making Slack retry.
        const text = refusalText(err);
        this.#background.run(() => this.notify(origin, text), "could not report a refused message");
        return;
      }
      throw err;
    }
  }

  async #userName(ws: Workspace, userId: string): Promise<string | undefined> {
    const key = `${ws.teamId}:${userId}`;
    const cached = this.#names.get(key);
    if (cached && Date.now() - cached.at < NAME_TTL_MS) return cached.name;
    const lookup = ws.client.users
      .info({ user: userId })
      .then(
        (res) =>
          res.user?.profile?.display_name || res.user?.real_name || res.user?.name || undefined,
      )
      .catch(() => undefined);
    const timeout = new Promise<undefined>((resolve) =>
      setTimeout(() => resolve(undefined), NAME_LOOKUP_MS).unref(),
    );
    const name = await Promise.race([lookup, timeout]);
    if (this.#names.size >= NAME_CACHE_MAX) this.#names.clear();
    this.#names.set(key, { name, at: Date.now() });
    return name;
  }

  async #interaction(payload: BlockActionsPayload): Promise<void> {
    if (payload.type !== "block_actions" || !payload.user) return;
    const action = payload.actions?.[0];
    const parsed = action ? parseActionId(action.action_id) : undefined;
    if (!action || !parsed) return; // link buttons open in the browser; nothing to do
    const teamId = payload.team?.id ?? payload.user.team_id;
    const userName = payload.user.username ?? payload.user.name;
    const who = {
      platform: this.platform,
      userId: payload.user.id,
      ...(teamId ? { workspace: teamId } : {}),
      ...(userName ? { userName } : {}),
    };
    const result = await this.#ctx.answer(parsed.requestId, { choice: parsed.choice }, who);
    const ws = await this.#workspaces.get(teamId);
    const channel = payload.container?.channel_id ?? payload.channel?.id;
    if (!ws || !channel) return;
    const threadTs = payload.container?.thread_ts ?? payload.message?.thread_ts;
    if (!result.ok) {
      this.#background.run(
        () =>
          slackCall(() =>
            ws.client.chat.postEphemeral({
              channel,
              user: who.userId,
              ...(threadTs ? { thread_ts: threadTs } : {}),
              text: `⚠️ ${result.reason ?? "this request cannot be answered"}.`,
            }),
          ),
        "could not explain a refused click",
      );
      return;
    }
    // A live view on this gateway closes its own card on request_resolved; otherwise close it here.
    const ts = payload.container?.message_ts ?? payload.message?.ts;
    if (this.#views.hasOpenCard(parsed.requestId) || !ts) return;
    const sections = (payload.message?.blocks ?? []).filter(
      (b) => b.type !== "actions" && b.type !== "context",
    );
    const line = outcomeMarkdown(
      action.text?.text ?? parsed.choice,
      parsed.choice,
      userName ?? who.userId,
    );
    this.#background.run(
      () =>
        slackCall(() =>
          ws.client.chat.update({
            channel,
            ts,
            text: payload.message?.text ?? "",
            blocks: closedCard(sections, line),
          }),
        ),
      "could not update the answered card",
    );
  }

  /**
   * A slash command. Help is answered in the HTTP response; a settings link
   * never is (the response goes back to whoever sent the request): it is
   * posted through the command's response_url, which Slack shows to the
   * person alone.
   */
  async #command(fields: Record<string, string>): Promise<Record<string, unknown> | undefined> {
    const text = (fields.text ?? "").trim();
    if (!isSettingsCommand(text)) {
      return {
        response_type: "ephemeral",
        text: `Mention me in a channel or send me a direct message to talk to the agent. \`${fields.command ?? "/lobu"} settings\` opens your personal settings.`,
      };
    }
    this.#background.run(
      () => this.#sendCommandSettings(fields),
      "could not send the settings link for a slash command",
    );
    return undefined;
  }

  async #sendCommandSettings(fields: Record<string, string>): Promise<void> {
    const origin: Origin = {
      platform: this.platform,
      channelId: fields.channel_id ?? "",
      userId: fields.user_id ?? "",
      isDirect: fields.channel_name === "directmessage",
      ...(fields.team_id ? { workspace: fields.team_id } : {}),
      ...(fields.user_name ? { userName: fields.user_name } : {}),
    };
    const url = await this.#ctx.settingsLink(origin);
    const content = { text: `Your settings: ${url}`, blocks: settingsBlocks(url) };
    const responseUrl = fields.response_url;
    if (responseUrl && responseUrlAllowed(responseUrl, this.#settings.apiUrl)) {
      await postToResponseUrl(responseUrl, { response_type: "ephemeral", ...content });
      return;
    }
    if (responseUrl)
      this.#log.warn(
        "a slash command's response_url is not a Slack host; using chat.postEphemeral",
      );
    const ws = await this.#workspaces.get(origin.workspace);
    if (!ws) throw new Error("no bot token for this Slack workspace");
    await slackCall(() =>
      ws.client.chat.postEphemeral({ channel: origin.channelId, user: origin.userId, ...content }),
    );
  }

  /** A capability request's link, to the person asked only (the card in the channel has none). */
  async #sendRequestLink(ws: Workspace, origin: Origin, request: CapabilityRequest): Promise<void> {
    const url = request.url ?? (await this.#ctx.settingsLink(origin));
    await slackCall(() =>
      ws.client.chat.postEphemeral({
        channel: origin.channelId,
        user: origin.userId,
        ...(origin.threadId ? { thread_ts: origin.threadId } : {}),
        text: `Your settings, to answer the agent's request for ${request.value}: ${url}`,
        blocks: settingsBlocks(url),
      }),
    );
  }

  /** The settings link is personal: in a DM a message, in a channel an ephemeral only the person sees. */
  async #sendSettings(ws: Workspace, origin: Origin): Promise<void> {
    const url = await this.#ctx.settingsLink(origin);
    const thread = origin.threadId ? { thread_ts: origin.threadId } : {};
    const content = { text: `Your settings: ${url}`, blocks: settingsBlocks(url) };
    if (origin.isDirect) {
      await slackCall(() =>
        ws.client.chat.postMessage({ channel: origin.channelId, ...thread, ...content }),
      );
    } else {
      await slackCall(() =>
        ws.client.chat.postEphemeral({
          channel: origin.channelId,
          user: origin.userId,
          ...thread,
          ...content,
        }),
      );
    }
  }
}
