import type { AgentEvent } from "@lobu/core";

/** Read an SSE response into events until a final `done`/`error` event (or the stream ends). */
export async function collectEvents(res: Response): Promise<(AgentEvent & { id?: string })[]> {
  if (!res.body) throw new Error(`no body (HTTP ${res.status})`);
  const events: (AgentEvent & { id?: string })[] = [];
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let sep = buffer.indexOf("\n\n");
    while (sep !== -1) {
      const block = buffer.slice(0, sep);
      buffer = buffer.slice(sep + 2);
      let data = "";
      let id: string | undefined;
      for (const line of block.split("\n")) {
        if (line.startsWith("data:")) data += line.slice(5).trimStart();
        else if (line.startsWith("id:")) id = line.slice(3).trim();
      }
      if (data) {
        const event = { ...(JSON.parse(data) as AgentEvent), ...(id ? { id } : {}) };
        events.push(event);
        if (event.type === "done" || event.type === "error") return events;
      }
      sep = buffer.indexOf("\n\n");
    }
  }
  return events;
}

/** The turn's reply: the `done` event's text, else the concatenated `text_delta`s. */
export function replyText(events: AgentEvent[]): string {
  const done = events.find((e) => e.type === "done");
  if (done && done.type === "done") return done.text;
  return events
    .filter((e): e is Extract<AgentEvent, { type: "text_delta" }> => e.type === "text_delta")
    .map((e) => e.text)
    .join("");
}
