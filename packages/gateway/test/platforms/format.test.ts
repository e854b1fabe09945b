import { parseHtml } from "@lobu/testkit";
import { describe, expect, it } from "vitest";
import { toMrkdwnSections } from "../../src/platforms/slack/mrkdwn.ts";
import { MESSAGE_LIMIT, toTelegramHtml, visibleLength } from "../../src/platforms/telegram/html.ts";

const SAMPLE = [
  "# Plan",
  "",
  "Some **bold**, _italic_, ~~gone~~ and `a<b>&c` text with a [link](https://example.com/?a=1&b=2).",
  "",
  "- first *item*",
  "- [x] done",
  "  1. nested",
  "",
  "```ts",
  "if (a < b && c > d) {}",
  "```",
  "",
  "> quoted **words**",
  "",
  "| name | size |",
  "|------|------|",
  "| a    | 10   |",
].join("\n");

describe("Markdown → Slack mrkdwn", () => {
  it("converts emphasis, links, code, lists, headings, quotes and tables", () => {
    const text = toMrkdwnSections(SAMPLE).join("\n\n");
    expect(text).toContain("*Plan*");
    expect(text).toContain("*bold*");
    expect(text).toContain("_italic_");
    expect(text).toContain("~gone~");
    expect(text).toContain("`a&lt;b&gt;&amp;c`");
    expect(text).toContain("<https://example.com/?a=1&amp;b=2|link>");
    expect(text).toContain("• first _item_");
    expect(text).toContain("• ☑ done");
    expect(text).toContain("    1. nested");
    expect(text).toContain("```\nif (a &lt; b &amp;&amp; c &gt; d) {}\n```");
    expect(text).toContain("> quoted *words*");
    expect(text).toMatch(/name \| size/);
  });

  it("never links javascript: URLs", () => {
    expect(toMrkdwnSections("[x](javascript:alert(1))").join("")).toBe("x");
  });

  it("splits long text into sections of at most 3000 characters, code fences intact", () => {
    const code = Array.from({ length: 400 }, (_, i) => `line ${i} ${"x".repeat(20)}`).join("\n");
    const md = `${"word ".repeat(1500)}\n\n\`\`\`\n${code}\n\`\`\``;
    const sections = toMrkdwnSections(md);
    expect(sections.length).toBeGreaterThan(3);
    for (const s of sections) expect(s.length).toBeLessThanOrEqual(3000);
    for (const s of sections.filter((x) => x.includes("line "))) {
      expect(s.startsWith("```\n")).toBe(true);
      expect(s.endsWith("\n```")).toBe(true);
    }
    expect(sections.join("\n")).toContain("line 399");
  });
});

describe("Markdown → Telegram HTML", () => {
  it("produces HTML Telegram parses, with the right entities", () => {
    const [html] = toTelegramHtml(SAMPLE);
    const parsed = parseHtml(html ?? "");
    const types = new Set(parsed.entities.map((e) => e.type));
    for (const t of ["bold", "italic", "strikethrough", "code", "text_link", "pre", "blockquote"])
      expect(types).toContain(t);
    expect(parsed.text).toContain("a<b>&c");
    expect(parsed.text).toContain("if (a < b && c > d) {}");
    const link = parsed.entities.find((e) => e.type === "text_link") as
      | { url?: string }
      | undefined;
    expect(link?.url).toBe("https://example.com/?a=1&b=2");
  });

  it("escapes what looks like markup in plain text", () => {
    const [html] = toTelegramHtml("1 < 2 and <b>not bold</b> & done");
    expect(parseHtml(html ?? "").text).toBe("1 < 2 and <b>not bold</b> & done");
    expect(parseHtml(html ?? "").entities).toEqual([]);
  });

  it("flattens nested quotes (Telegram does not nest blockquotes)", () => {
    const [html] = toTelegramHtml("> outer\n>> inner");
    expect(() => parseHtml(html ?? "")).not.toThrow();
    const parsed = parseHtml(html ?? "");
    expect(parsed.text).toMatch(/outer[\s\S]*inner/);
    expect(parsed.entities.filter((e) => e.type === "blockquote")).toHaveLength(2);
  });

  it("splits long replies into messages of at most 4096 visible characters, each valid", () => {
    const md = Array.from(
      { length: 60 },
      (_, i) => `Paragraph ${i}: ${"**bold** text ".repeat(20)}`,
    ).join("\n\n");
    const chunks = toTelegramHtml(md);
    expect(chunks.length).toBeGreaterThan(1);
    for (const chunk of chunks) {
      expect(visibleLength(chunk)).toBeLessThanOrEqual(MESSAGE_LIMIT);
      expect(parseHtml(chunk).text.length).toBeLessThanOrEqual(MESSAGE_LIMIT);
    }
    expect(chunks.map((c) => parseHtml(c).text).join("\n")).toContain("Paragraph 59");
  });

  it("splits one huge paragraph and one huge code block", () => {
    const chunks = toTelegramHtml(
      `${"lorem ipsum ".repeat(1000)}\n\n\`\`\`\n${"0123456789\n".repeat(1000)}\`\`\``,
    );
    for (const chunk of chunks)
      expect(parseHtml(chunk).text.length).toBeLessThanOrEqual(MESSAGE_LIMIT);
    expect(chunks.length).toBeGreaterThanOrEqual(5);
  });
});
