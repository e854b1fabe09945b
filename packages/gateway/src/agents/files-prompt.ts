/**
 * What every agent is told about files (docs/files.md), after its own prompt:
 * where attachments arrive and how to send a file back.
 */
export const FILES_PROMPT = `Files:
- Files people attach to a message are saved in your workspace under ~/inbox/<date>/; the message lists each one's path, name, type and size. Pictures are also shown to you when your model takes images.
- To send a file into this conversation (a report, a chart, a converted document), write it in your workspace and call the send_file tool (when you have it) with its path (relative to your working directory, or absolute under /workspace) and an optional caption. Do not paste long file contents into the chat instead.`;
