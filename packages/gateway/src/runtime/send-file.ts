import type { FilesSection } from "@lobu/core";
import { z } from "zod";
import type { FileBlobs } from "../conversations/file-blobs.ts";
import { typeFromName } from "../domain/file-types.ts";
import type { PlatformFiles } from "../domain/files.ts";
import { mib, readFromVolume, resolveInVolume, safeFileName } from "../sandbox/volume-files.ts";
import type { ActiveTurns } from "./active-turns.ts";
import type { GatewayToolDefinition } from "./gateway-tools.ts";

export interface SendFileDeps {
  limits: Pick<FilesSection, "max_send_mb" | "download_ttl">;
  /** The host folder of a sandbox's volume (its /workspace). */
  volumeDir(sandboxId: string): string;
  /** The platform's file capability, if it has one. */
  filesFor(platform: string): PlatformFiles | undefined;
  /** Where a REST conversation's files wait to be downloaded. */
  blobs: Pick<FileBlobs, "put">;
  /** The running turn, to tell its clients (the `file` event). */
  turns: Pick<ActiveTurns, "stream">;
}

const SendFileInput = z.strictObject({
  path: z
    .string()
    .min(1)
    .max(4096)
    .describe(
      "The file to send: relative to your working directory, or absolute under /workspace (~/ works too).",
    ),
  caption: z.string().max(1000).optional().describe("A short text shown with the file."),
});

/**
 * `send_file`: the agent sends a file from its workspace into its own
 * conversation. The gateway reads it from the sandbox's volume (never
 * following a link out of it, refusing devices and FIFOs, within
 * `max_send_mb`) and posts it natively on the platform; a REST conversation
 * gets a `file` event with a download URL only its client may fetch. Its
 * default policy is "allow": it can only reach the thread the person is
 * already talking in (docs/files.md).
 */
export function sendFileTool(deps: SendFileDeps): GatewayToolDefinition<typeof SendFileInput> {
  return {
    name: "send_file",
    description:
      "Send a file from your workspace into this conversation (as an attachment the person can open or download). Write the file first, then call this with its path.",
    input: SendFileInput,
    defaultPolicy: "allow",
    async execute(input, ctx) {
      const volumeDir = deps.volumeDir(ctx.sandboxId);
      const maxBytes = deps.limits.max_send_mb * 1024 * 1024;
      const parts = await resolveInVolume(volumeDir, input.path);
      const data = await readFromVolume(volumeDir, parts, maxBytes);
      // Shown to people as the agent named it, cleaned as names coming in are: a bidi
      // override ("invoice\u202efdp.exe" reads as "invoiceexe.pdf"), control characters
      // or a leading dot cannot make a file look like something else.
      const name = safeFileName(parts.at(-1)!);
      const mimeType = typeFromName(name);
      const caption = input.caption?.trim() || undefined;
      const platform = deps.filesFor(ctx.origin.platform);
      let url: string | undefined;
      if (platform) {
        await platform.upload(ctx.origin, {
          name,
          mimeType,
          data,
          ...(caption ? { caption } : {}),
        });
      } else if (ctx.origin.platform === "api") {
        const id = await deps.blobs.put(
          {
            kind: "sent",
            origin: ctx.origin,
            conversationId: ctx.sandboxId,
            messageId: ctx.messageId,
            name,
            mimeType,
          },
          data,
          deps.limits.download_ttl,
        );
        url = `/api/v1/files/${id}`;
      } else {
        throw new Error(`files cannot be sent on ${ctx.origin.platform} from this gateway`);
      }
      deps.turns.stream(ctx.sandboxId)?.emit({
        type: "file",
        fileId: url ? url.slice("/api/v1/files/".length) : `${ctx.messageId}:${name}`,
        name,
        mimeType,
        size: data.length,
        ...(caption ? { caption } : {}),
        ...(url ? { url } : {}),
      });
      return `Sent ${name} (${mimeType}, ${mib(data.length)}) into the conversation.`;
    },
  };
}
