import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import { type AdapterContext, REDELIVERY_MEMORY_MS } from "../shared/adapter.ts";
import { type BindCommand, parseBindCommand, runBindCommand } from "../shared/bind.ts";
import { inboundMessage, type SubmitInboundDeps, submitInbound } from "../shared/inbound.ts";
import { STOP_REACTIONS, stopFromChat } from "../shared/stop.ts";
import type { AssistantThreads } from "./assistant.ts";
import { slackCall } from "./client.ts";
import { isSettingsCommand, type SlackCommands } from "./commands.ts";
import type { SlackSettings } from "./config.ts";
import type { SlackDirectory } from "./directory.ts";
import {
  type Classified,
  classify,
  type EventEnvelope,
  filesOf,
  type SlackMessageEvent,
  stopReaction,
} from "./webhook/parse.ts";
import type { Workspace, Workspaces } from "./workspaces.ts";

/** A thread stays open for follow-ups without a mention this long after the last mention. */
const THREAD_TTL_MS = 30 * 86_400_000;

const threadKey = (team: string, channel: string, threadTs: string, user: string) =>
  `thread:${team}:${channel}:${threadTs}:${user}`;

export interface SlackEventsDeps {
  settings: Pick<SlackSettings, "threadFollowups" | "agentId">;
  state: AdapterContext["state"];
  workspaces: Workspaces;
  /** People and channels as Slack describes them (names, the access check's facts). */
  directory: SlackDirectory;
  commands: Pick<SlackCommands, "settingsMessage">;
  /** The assistant pane's threads (prompts, titles). */
  assistant: Pick<AssistantThreads, "started" | "message">;
  /** How a message is stored (its ack policy, how a refusal is explained). */
  inbound: SubmitInboundDeps;
  /** Binding by command, its once-marker, and the access check of a channel the bot joins. */
  ctx: Pick<AdapterContext, "bindChannel" | "once" | "accessRefusal">;
  log: Logger;
}

/**
 * Events API events: messages for the agent (mentions, DMs, follow-ups in a
 * thread someone started with a mention), `settings` written to the bot, and
 * the app leaving a workspace.
 */
export class SlackEvents {
  readonly #deps: SlackEventsDeps;

  constructor(deps: SlackEventsDeps) {
    this.#deps = deps;
  }

  async handle(body: EventEnvelope): Promise<void> {
    const event = body.event;
    const teamId = body.team_id ?? event?.team;
    if (!event || !teamId) return;
    // A revoked user token leaves the bot token working; only a revoked bot token ends the install.
    const botRevoked = event.type === "tokens_revoked" && (event.tokens?.bot?.length ?? 0) > 0;
    if (event.type === "app_uninstalled" || botRevoked) {
      await this.#deps.workspaces.remove(teamId);
      this.#deps.log.info({ teamId }, "Slack app removed from a workspace");
      return;
    }
    if (event.type === "reaction_added") return this.#reaction(teamId, event);
    if (event.type === "assistant_thread_started") return this.#assistantThread(teamId, event);
    if (event.type === "app_mention" || event.type === "message")
      await this.#message(teamId, event);
    if (event.type === "member_joined_channel") await this.#joined(teamId, event);
  }

  /**
   * The bot was added to a channel its agent will not answer in (shared with
   * another organization): say so at once, to whoever added it, rather than
   * leaving them to find out with their first question.
   */
  async #joined(teamId: string, event: NonNullable<EventEnvelope["event"]>): Promise<void> {
    const { workspaces, directory, inbound, ctx, settings } = this.#deps;
    const ws = await workspaces.get(teamId);
    if (!ws || event.user !== ws.botUserId || !event.channel) return;
    const who = event.inviter ?? event.user;
    const origin: Origin = {
      platform: "slack",
      workspace: teamId,
      channelId: event.channel,
      userId: who,
      isDirect: false,
    };
    const facts = directory.facts(ws, {
      user: who,
      channel: event.channel,
      isDirect: false,
      userTeam: undefined,
    });
    inbound.background.run(async () => {
      const refusal = await ctx.accessRefusal({
        origin,
        facts,
        ...(settings.agentId ? { agentId: settings.agentId } : {}),
      });
      if (refusal?.reason !== "external") return;
      const to = event.inviter ? `<@${event.inviter}> ` : "";
      await inbound.notify(origin, `⚠️ ${to}${refusal.message}`);
    }, "could not check a channel the bot was added to");
  }

  /** `@bot bind <agent>` / `@bot unbind`, answered in the thread. */
  async #bind(ws: Workspace, origin: Origin, ts: string, bind: BindCommand): Promise<void> {
    const { inbound, ctx, directory } = this.#deps;
    // Slack sends a mention as app_mention and message, and may retry either: bind once.
    const marker = `bind:${ws.teamId}:${origin.channelId}:${ts}`;
    if (!(await ctx.once.claim(marker, REDELIVERY_MEMORY_MS))) return;
    // Workspace admins and owners (users.info is_admin, is_owner) administer every channel.
    const isAdmin = async () => (await directory.person(ws, origin.userId))?.admin ?? false;
    inbound.background.run(
      async () => inbound.notify(origin, await runBindCommand(ctx, origin, bind, isAdmin)),
      "could not bind a channel",
    );
  }

  async #message(teamId: string, event: SlackMessageEvent): Promise<void> {
    const { workspaces, state, settings, log } = this.#deps;
    const ws = await workspaces.get(teamId);
    if (!ws) {
      log.warn(
        { teamId },
        "Slack event from a workspace this gateway has no token for; install the app via /slack/install",
      );
      return;
    }
    let m = classify(event, ws.botUserId);
    if (m.kind === "ignore") {
      log.debug({ reason: m.reason, type: event.type }, "ignoring Slack event");
      return;
    }
    if (m.kind === "followup") {
      const open =
        settings.threadFollowups &&
        m.threadTs &&
        (await state.get(threadKey(teamId, m.channel, m.threadTs, m.user)));
      // Not a thread the person opened with a mention: an ordinary channel message.
      if (!open) m = { ...m, kind: "ambient" };
    }
    const ambient = m.kind === "ambient";
    const { directory } = this.#deps;
    // An ambient message is rarely taken: no lookup before the gateway wants it.
    const name = ambient ? undefined : (await directory.person(ws, m.user))?.name;
    const origin = originOf(teamId, m, name);
    if (!ambient && isSettingsCommand(m.text)) {
      await this.#deps.commands.settingsMessage(ws, origin, m.ts);
      return;
    }
    const bind = m.kind === "mention" ? parseBindCommand(m.text) : undefined;
    if (bind) {
      await this.#bind(ws, origin, m.ts, bind);
      return;
    }
    const message = inboundMessage({
      origin,
      text: m.text,
      files: filesOf(event),
      // One person's message: Slack may send it as app_mention and message, and retry either.
      eventId: `${teamId}:${m.channel}:${m.ts}`,
      agentId: settings.agentId,
      facts: directory.facts(ws, {
        user: m.user,
        channel: m.channel,
        isDirect: origin.isDirect,
        userTeam: m.userTeam,
      }),
      ambient,
    });
    if (!message) return;
    if (m.kind === "mention" && m.threadTs)
      await state.set(threadKey(teamId, m.channel, m.threadTs, m.user), "1", THREAD_TTL_MS);
    await submitInbound(this.#deps.inbound, message);
    // In the assistant pane, the thread's first message names it.
    if (m.kind === "dm" && m.threadTs)
      await this.#deps.assistant.message(ws, m.channel, m.threadTs, m.text);
  }

  /**
   * A stop reaction stops the reactor's running turn in that conversation
   * (as a `stop` message there would); what to tell them goes to them alone.
   */
  async #reaction(teamId: string, event: SlackMessageEvent): Promise<void> {
    const { workspaces, settings, inbound } = this.#deps;
    const ws = await workspaces.get(teamId);
    const r = ws ? stopReaction(event, ws.botUserId, STOP_REACTIONS) : undefined;
    if (!ws || !r) return;
    const userName = (await this.#deps.directory.person(ws, r.user))?.name;
    const origin: Origin = {
      platform: "slack",
      workspace: teamId,
      channelId: r.channel,
      userId: r.user,
      isDirect: r.channel.startsWith("D"),
      ...(userName ? { userName } : {}),
    };
    const target = { origin, ...(settings.agentId ? { agentId: settings.agentId } : {}) };
    await stopFromChat(inbound.ctx, { who: origin, target, clearQueue: false }, async (text) =>
      inbound.background.run(
        () =>
          slackCall(() => ws.client.chat.postEphemeral({ channel: r.channel, user: r.user, text })),
        "could not answer a stop reaction",
      ),
    );
  }

  /** The assistant pane opened a thread: its suggested prompts. */
  async #assistantThread(teamId: string, event: SlackMessageEvent): Promise<void> {
    const ws = await this.#deps.workspaces.get(teamId);
    if (ws) await this.#deps.assistant.started(ws, event);
  }
}

function originOf(
  teamId: string,
  m: Exclude<Classified, { kind: "ignore" }>,
  userName: string | undefined,
): Origin {
  return {
    platform: "slack",
    workspace: teamId,
    channelId: m.channel,
    userId: m.user,
    isDirect: m.kind === "dm",
    messageRef: m.ts,
    ...(m.threadTs ? { threadId: m.threadTs } : {}),
    ...(userName ? { userName } : {}),
  };
}
