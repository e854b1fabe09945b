import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import { inboundMessage, type SubmitInboundDeps, submitInbound } from "../shared/inbound.ts";
import { STOP_REACTIONS, stopFromChat } from "../shared/stop.ts";
import type { AssistantThreads } from "./assistant.ts";
import { slackCall } from "./client.ts";
import { isSettingsCommand, type SlackCommands } from "./commands.ts";
import type { SlackSettings } from "./config.ts";
import type { UserNames } from "./user-names.ts";
import {
  type Classified,
  classify,
  type EventEnvelope,
  filesOf,
  type SlackMessageEvent,
  stopReaction,
} from "./webhook/parse.ts";
import type { Workspaces } from "./workspaces.ts";

/** A thread stays open for follow-ups without a mention this long after the last mention. */
const THREAD_TTL_MS = 30 * 86_400_000;

const threadKey = (team: string, channel: string, threadTs: string, user: string) =>
  `thread:${team}:${channel}:${threadTs}:${user}`;

export interface SlackEventsDeps {
  settings: Pick<SlackSettings, "threadFollowups" | "agentId">;
  state: AdapterContext["state"];
  workspaces: Workspaces;
  names: UserNames;
  commands: Pick<SlackCommands, "settingsMessage">;
  /** The assistant pane's threads (prompts, titles). */
  assistant: Pick<AssistantThreads, "started" | "message">;
  /** How a message is stored (its ack policy, how a refusal is explained). */
  inbound: SubmitInboundDeps;
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
    const m = classify(event, ws.botUserId);
    if (m.kind === "ignore") {
      log.debug({ reason: m.reason, type: event.type }, "ignoring Slack event");
      return;
    }
    if (m.kind === "followup") {
      if (!settings.threadFollowups || !m.threadTs) return;
      if (!(await state.get(threadKey(teamId, m.channel, m.threadTs, m.user)))) return;
    }
    const origin = originOf(teamId, m, await this.#deps.names.of(ws, m.user));
    if (isSettingsCommand(m.text)) {
      await this.#deps.commands.settingsMessage(ws, origin, m.ts);
      return;
    }
    const message = inboundMessage({
      origin,
      text: m.text,
      files: filesOf(event),
      // One person's message: Slack may send it as app_mention and message, and retry either.
      eventId: `${teamId}:${m.channel}:${m.ts}`,
      agentId: settings.agentId,
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
    const userName = await this.#deps.names.of(ws, r.user);
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
