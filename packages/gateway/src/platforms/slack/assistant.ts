import type { Logger } from "pino";
import type { AdapterContext } from "../shared/adapter.ts";
import type { Background } from "../shared/background.ts";
import { clip } from "../shared/markdown.ts";
import { slackCall } from "./client.ts";
import type { SlackSettings } from "./config.ts";
import type { SlackMessageEvent } from "./webhook/parse.ts";
import type { Workspace } from "./workspaces.ts";

/** An assistant thread is remembered this long (its status and title calls need to know it). */
const THREAD_TTL_MS = 30 * 86_400_000;
const threadKey = (team: string, channel: string, threadTs: string) =>
  `assistant:${team}:${channel}:${threadTs}`;
/** Longest title shown in the assistant pane's history. */
const TITLE_CHARS = 60;
/** The status line while the agent works ("<app> is working on it…"). */
export const WORKING_STATUS = "is working on it…";

export interface AssistantDeps {
  settings: Pick<SlackSettings, "suggestedPrompts">;
  state: AdapterContext["state"];
  background: Background;
  log: Logger;
}

/**
 * Slack's assistant pane (apps with the Agents & AI Apps feature): a thread
 * of the app's DM opened from the pane gets the configured suggested prompts,
 * a title from its first message, and a status line while the agent works
 * (assistant.threads.*, scope `assistant:write`). All of it is decoration:
 * a call Slack refuses is logged and the conversation goes on.
 */
export class AssistantThreads {
  readonly #deps: AssistantDeps;

  constructor(deps: AssistantDeps) {
    this.#deps = deps;
  }

  /** `assistant_thread_started`: remember the thread, offer the prompts. */
  async started(ws: Workspace, event: SlackMessageEvent): Promise<void> {
    const thread = event.assistant_thread;
    const channel = thread?.channel_id;
    const threadTs = thread?.thread_ts;
    if (!channel || !threadTs) return;
    await this.#deps.state.set(threadKey(ws.teamId, channel, threadTs), "new", THREAD_TTL_MS);
    const prompts = this.#deps.settings.suggestedPrompts;
    if (prompts.length === 0) return;
    this.#deps.background.run(
      () =>
        slackCall(() =>
          ws.client.assistant.threads.setSuggestedPrompts({
            channel_id: channel,
            thread_ts: threadTs,
            prompts: prompts.map((p) => ({ title: p.title, message: p.message })) as [
              { title: string; message: string },
            ],
          }),
        ),
      "could not set the assistant pane's suggested prompts",
    );
  }

  /** Whether `threadTs` in `channel` is an assistant pane thread. */
  async isThread(teamId: string, channel: string, threadTs: string | undefined): Promise<boolean> {
    if (!threadTs) return false;
    return (await this.#deps.state.get(threadKey(teamId, channel, threadTs))) !== null;
  }

  /** A person wrote in an assistant thread: its first message becomes the thread's title. */
  async message(ws: Workspace, channel: string, threadTs: string, text: string): Promise<void> {
    const key = threadKey(ws.teamId, channel, threadTs);
    if ((await this.#deps.state.get(key)) !== "new") return;
    await this.#deps.state.set(key, "titled", THREAD_TTL_MS);
    const title = clip(text.replace(/\s+/g, " ").trim(), TITLE_CHARS);
    if (!title) return;
    this.#deps.background.run(
      () =>
        slackCall(() =>
          ws.client.assistant.threads.setTitle({ channel_id: channel, thread_ts: threadTs, title }),
        ),
      "could not set the assistant thread's title",
    );
  }
}

/** Set (or with "" clear) the status line of an assistant thread; best effort. */
export function setAssistantStatus(
  ws: Pick<Workspace, "client">,
  at: { channel: string; threadTs: string },
  status: string,
  log: Logger,
): void {
  slackCall(() =>
    ws.client.assistant.threads.setStatus({
      channel_id: at.channel,
      thread_ts: at.threadTs,
      status,
    }),
  ).catch((err) => log.debug({ err }, "could not set the assistant thread's status"));
}
