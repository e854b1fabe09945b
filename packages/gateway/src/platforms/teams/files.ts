import type { Readable } from "node:stream";
import {
  bounded,
  type DownloadOptions,
  FileRefused,
  FileTooLarge,
  type InboundFile,
  type OutboundFile,
  type PlatformFiles,
} from "../../domain/files.ts";
import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import { storeFileLink } from "../shared/file-links.ts";
import { attachmentOf, card, openUrl, textBlock } from "./cards.ts";
import { type ConnectorClient, teamsCall } from "./client.ts";
import { serviceUrlAllowed } from "./config.ts";
import type { Conversations } from "./conversations.ts";
import { type GraphFiles, SharedFileRef } from "./graph-files.ts";

/** Pictures sent inline (base64 in the activity): Teams keeps a message under about 28 KB. */
const INLINE_IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif"]);
export const INLINE_IMAGE_MAX_BYTES = 20 * 1024;
/** Where a file may live and a pre-authenticated download URL may point (SharePoint, OneDrive). */
export const DOWNLOAD_HOSTS = [
  "*.sharepoint.com",
  "*.sharepoint.us",
  "*.sharepoint.de",
  "*.sharepoint.cn",
];

/**
 * Files on Microsoft Teams. In: a file sent in a 1:1 chat arrives as
 * `file.download.info` with a pre-authenticated OneDrive download URL
 * (fetched without any token, only from SharePoint hosts or a service host);
 * an inline image as a `contentUrl` on the Bot Connector, fetched with the
 * bot's token, which goes only to the configured service hosts; a file shared
 * in a channel or group chat as a SharePoint reference, read through
 * Microsoft Graph (graph-files.ts). Out: a small
 * picture inline (base64); in a channel with `upload_channel_files`, a card
 * opening the file uploaded to the channel's files through Graph (only the
 * team's members can open it); anything else as a card with a download link
 * to the gateway: an unguessable URL that works for an hour, posted only into
 * the conversation the turn belongs to (the file consent card of the real
 * OneDrive flow needs the person's consent round trip and works in 1:1 only).
 */
export class TeamsFiles implements PlatformFiles {
  readonly #client: ConnectorClient;
  readonly #serviceHosts: readonly string[];
  readonly #graph: GraphFiles;
  readonly #uploadChannelFiles: boolean;
  readonly #deps: () => {
    log: AdapterContext["log"];
    state: AdapterContext["state"];
    publicUrl: string;
    conversations: Conversations;
  };

  constructor(opts: {
    client: ConnectorClient;
    serviceHosts: readonly string[];
    graph: GraphFiles;
    uploadChannelFiles?: boolean;
    deps: () => {
      log: AdapterContext["log"];
      state: AdapterContext["state"];
      publicUrl: string;
      conversations: Conversations;
    };
  }) {
    this.#uploadChannelFiles = opts.uploadChannelFiles ?? false;
    this.#client = opts.client;
    this.#serviceHosts = opts.serviceHosts;
    this.#graph = opts.graph;
    this.#deps = opts.deps;
  }

  async download(
    _origin: Origin,
    file: InboundFile,
    opts: DownloadOptions,
  ): Promise<AsyncIterable<Uint8Array>> {
    const ref = file.ref ?? "";
    let res: Response;
    if (ref.startsWith("bot:")) {
      const url = ref.slice(4);
      if (!serviceUrlAllowed(url, this.#serviceHosts))
        throw new FileRefused("its URL is not on a Teams service host");
      res = await this.#client.download(url, opts.signal).catch(() => {
        throw new Error("could not reach Teams");
      });
    } else if (ref.startsWith("download:")) {
      const url = ref.slice(9);
      if (!serviceUrlAllowed(url, [...DOWNLOAD_HOSTS, ...this.#serviceHosts]))
        throw new FileRefused("its download URL is not on OneDrive/SharePoint");
      res = await fetch(url, {
        redirect: "error",
        ...(opts.signal ? { signal: opts.signal } : {}),
      }).catch(() => {
        throw new Error("could not reach OneDrive");
      });
    } else if (ref.startsWith("graph:")) {
      let shared: SharedFileRef;
      try {
        shared = SharedFileRef.parse(JSON.parse(ref.slice(6)));
      } catch {
        throw new FileRefused("Teams did not say where the file is");
      }
      res = await this.#graph.open(shared, opts);
    } else {
      throw new FileRefused(
        "Teams did not say where the file is; send it in your 1:1 chat with the bot",
      );
    }
    if (!res.ok || !res.body) throw new Error(`Teams refused the download (${res.status})`);
    const length = Number(res.headers.get("content-length") ?? Number.NaN);
    if (length > opts.maxBytes) {
      await res.body.cancel();
      throw new FileTooLarge(opts.maxBytes);
    }
    return bounded(res.body as unknown as Readable & AsyncIterable<Uint8Array>, opts.maxBytes);
  }

  async upload(origin: Origin, file: OutboundFile): Promise<void> {
    const { log, state, publicUrl, conversations } = this.#deps();
    const ref = await conversations.get(origin.channelId);
    const caption = file.caption ?? "";
    const reply = origin.messageRef ? { replyToId: origin.messageRef } : {};
    if (INLINE_IMAGE_TYPES.has(file.mimeType) && file.data.length <= INLINE_IMAGE_MAX_BYTES) {
      const contentUrl = `data:${file.mimeType};base64,${file.data.toString("base64")}`;
      await teamsCall(() =>
        this.#client.send(ref.serviceUrl, origin.channelId, {
          type: "message",
          ...(caption ? { text: caption, textFormat: "plain" } : {}),
          attachments: [{ contentType: file.mimeType, contentUrl, name: file.name }],
          ...reply,
        }),
      );
      return;
    }
    // In a channel, with the permission: into the channel's files, which
    // only the team's members can open. Else (or when Graph refuses) a link.
    const webUrl =
      this.#uploadChannelFiles && ref.graphChannel && ref.tenantId
        ? await this.#graph
            .uploadToChannel(ref.tenantId, ref.graphChannel, file)
            .catch((err: unknown) => {
              log.warn({ err }, "could not upload to the Teams channel's files; sending a link");
              return undefined;
            })
        : undefined;
    const [note, action, url] = webUrl
      ? ["Saved in this channel's files: the team's members can open it.", "Open", webUrl]
      : [
          "The download link works for an hour.",
          "Download",
          await storeFileLink(state, publicUrl, "teams", file),
        ];
    const content = card(
      [
        textBlock(`📎 ${file.name} (${file.mimeType}, ${file.data.length} bytes)`, {
          weight: "Bolder",
        }),
        textBlock(note, { isSubtle: true }),
      ],
      [openUrl(`${action} ${file.name}`, url)],
    );
    await teamsCall(() =>
      this.#client.send(ref.serviceUrl, origin.channelId, {
        type: "message",
        ...(caption ? { text: caption, textFormat: "plain" } : {}),
        attachments: [attachmentOf(content)],
        ...reply,
      }),
    );
  }
}
