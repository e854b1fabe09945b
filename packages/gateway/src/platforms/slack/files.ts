import type { Readable } from "node:stream";
import type {
  DownloadOptions,
  InboundFile,
  OutboundFile,
  PlatformFiles,
} from "../../domain/files.ts";
import { bounded, FileRefused, FileTooLarge } from "../../domain/files.ts";
import type { Origin } from "../../domain/origin.ts";
import { slackCall } from "./client.ts";
import type { Workspaces } from "./workspaces.ts";

/** Slack's own file host; the bot token is sent nowhere else (besides the configured API host). */
const SLACK_FILES_HOST = "files.slack.com";

/**
 * Files on Slack (needs the `files:read` and `files:write` scopes): an
 * attachment is fetched from its `url_private_download` with the
 * workspace's bot token, as Slack's clients do; a file the agent sends is
 * uploaded into the thread with `files.uploadV2` (getUploadURLExternal, the
 * upload, completeUploadExternal).
 */
export class SlackFiles implements PlatformFiles {
  readonly #workspaces: Workspaces;
  readonly #apiOrigin: string;

  constructor(workspaces: Workspaces, apiUrl: string) {
    this.#workspaces = workspaces;
    this.#apiOrigin = new URL(apiUrl).origin;
  }

  async download(
    origin: Origin,
    file: InboundFile,
    opts: DownloadOptions,
  ): Promise<AsyncIterable<Uint8Array>> {
    const ws = await this.#workspaces.get(origin.workspace);
    if (!ws?.client.token) throw new FileRefused("the app is not installed in this workspace");
    const url = URL.parse(file.ref ?? "");
    // The URL came in a signed event, but the token must still go to Slack alone.
    if (!url || !(url.origin === this.#apiOrigin || isSlackFilesUrl(url)))
      throw new FileRefused("its URL is not on Slack (a file shared from elsewhere)");
    const res = await fetch(url, {
      headers: { authorization: `Bearer ${ws.client.token}` },
      // A redirect could lead the token elsewhere.
      redirect: "error",
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const type = res.headers.get("content-type") ?? "";
    // Without access Slack answers with its sign-in page, not an error status.
    if (!res.ok || !res.body || (type.startsWith("text/html") && !file.mimeType?.includes("html")))
      throw new FileRefused(
        `Slack refused the download (${res.status}); the app needs the files:read scope`,
      );
    const length = Number(res.headers.get("content-length") ?? Number.NaN);
    if (length > opts.maxBytes) {
      await res.body.cancel();
      throw new FileTooLarge(opts.maxBytes);
    }
    return bounded(res.body as unknown as Readable & AsyncIterable<Uint8Array>, opts.maxBytes);
  }

  async upload(origin: Origin, file: OutboundFile): Promise<void> {
    const ws = await this.#workspaces.get(origin.workspace);
    if (!ws) throw new Error("no bot token for this Slack workspace");
    const content = {
      file: file.data,
      filename: file.name,
      title: file.name,
      ...(file.caption ? { initial_comment: file.caption } : {}),
    };
    const threadTs = origin.threadId;
    await slackCall(() =>
      threadTs
        ? ws.client.filesUploadV2({ channel_id: origin.channelId, thread_ts: threadTs, ...content })
        : ws.client.filesUploadV2({ channel_id: origin.channelId, ...content }),
    );
  }
}

function isSlackFilesUrl(url: URL): boolean {
  return url.protocol === "https:" && url.hostname === SLACK_FILES_HOST;
}
