import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";

/**
 * A tool result as text for the model, bounded: text as it is, structured
 * content as JSON, images, audio and embedded resources by what they are
 * (the model gets text here, not binary), resource links by their URI.
 */
export function resultText(result: CallToolResult, max: number): string {
  const parts: string[] = [];
  for (const item of result.content ?? []) {
    switch (item.type) {
      case "text":
        parts.push(item.text);
        break;
      case "image":
      case "audio":
        parts.push(
          `[${item.type} ${item.mimeType}, ${Math.floor((item.data.length * 3) / 4)} bytes]`,
        );
        break;
      case "resource": {
        const r = item.resource;
        parts.push("text" in r ? `[resource ${r.uri}]\n${r.text}` : `[resource ${r.uri}, binary]`);
        break;
      }
      case "resource_link":
        parts.push(`[link ${item.name}: ${item.uri}]`);
        break;
    }
  }
  if (parts.length === 0 && result.structuredContent !== undefined)
    parts.push(JSON.stringify(result.structuredContent));
  const text = parts.join("\n");
  if (text.length <= max) return text;
  const note = `\n[… cut: the result was ${text.length} characters, the first ${max} are shown]`;
  return text.slice(0, max - note.length) + note;
}
