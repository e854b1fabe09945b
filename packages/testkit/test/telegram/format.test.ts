import { describe, expect, it } from "vitest";
import {
  detectEntities,
  parseHtml,
  parseMarkdownLegacy,
  parseMarkdownV2,
} from "../../src/platforms.ts";

describe("MarkdownV2", () => {
  it("nests entities like the Bot API documentation example", () => {
    const { text, entities } = parseMarkdownV2(
      "*bold _italic bold ~italic bold strikethrough ||italic bold strikethrough spoiler||~ __underline italic bold___ bold*",
    );
    expect(text).toBe(
      "bold italic bold italic bold strikethrough italic bold strikethrough spoiler underline italic bold bold",
    );
    expect(entities.map((e) => e.type)).toEqual([
      "bold",
      "italic",
      "strikethrough",
      "spoiler",
      "underline",
    ]);
    const underline = entities.find((e) => e.type === "underline")!;
    expect(text.slice(underline.offset, underline.offset + underline.length)).toBe(
      "underline italic bold",
    );
  });

  it("parses code, pre with language, links, custom emoji and escapes", () => {
    const src =
      "`a\\`b` ```ts\nconst x = 1;\n``` [site](https://x.dev/\\(1\\)) ![👍](tg://emoji?id=5368324170671202286) \\*";
    const { text, entities } = parseMarkdownV2(src);
    expect(text).toBe("a`b const x = 1;\n site 👍 *");
    expect(entities).toEqual([
      { type: "code", offset: 0, length: 3 },
      { type: "pre", offset: 4, length: 13, language: "ts" },
      { type: "text_link", offset: 18, length: 4, url: "https://x.dev/(1)" },
      { type: "custom_emoji", offset: 23, length: 2, custom_emoji_id: "5368324170671202286" },
    ]);
  });

  it("parses block quotes and expandable block quotes", () => {
    expect(parseMarkdownV2(">first\n>second\nafter")).toEqual({
      text: "first\nsecond\nafter",
      entities: [{ type: "blockquote", offset: 0, length: 12 }],
    });
    expect(parseMarkdownV2("**>shown\n>hidden||")).toEqual({
      text: "shown\nhidden",
      entities: [{ type: "expandable_blockquote", offset: 0, length: 12 }],
    });
    expect(() => parseMarkdownV2("a > b")).toThrow("Character '>' is reserved");
  });

  it("reports positions as UTF-8 byte offsets", () => {
    expect(() => parseMarkdownV2("🙂 *x")).toThrow(
      "Can't find end of Bold entity at byte offset 5",
    );
    expect(() => parseMarkdownV2("```js\ncode")).toThrow(
      "Can't find end of PreCode entity at byte offset 0",
    );
    expect(() => parseMarkdownV2("[x](https://a.b")).toThrow(
      "Can't find end of a URL at byte offset 4",
    );
    expect(() => parseMarkdownV2("1+1=2")).toThrow("Character '+' is reserved");
  });
});

describe("HTML", () => {
  it("maps tags to entities", () => {
    const { text, entities } = parseHtml(
      '<s>x</s> <u>u</u> <tg-spoiler>s</tg-spoiler> <span class="tg-spoiler">t</span> <pre><code class="language-python">x = 1</code></pre> <blockquote expandable>q</blockquote> a&amp;b &nbsp;',
    );
    expect(text).toBe("x u s t x = 1 q a&b &nbsp;");
    expect(entities).toEqual([
      { type: "strikethrough", offset: 0, length: 1 },
      { type: "underline", offset: 2, length: 1 },
      { type: "spoiler", offset: 4, length: 1 },
      { type: "spoiler", offset: 6, length: 1 },
      { type: "pre", offset: 8, length: 5, language: "python" },
      { type: "expandable_blockquote", offset: 14, length: 1 },
    ]);
  });

  it("rejects what Telegram rejects", () => {
    expect(() => parseHtml("a < b")).toThrow('Unsupported start tag "" at byte offset 2');
    expect(() => parseHtml("<p>x</p>")).toThrow('Unsupported start tag "p" at byte offset 0');
    expect(() => parseHtml('<span class="x">x</span>')).toThrow(
      'Tag "span" must have class "tg-spoiler"',
    );
    expect(() => parseHtml("<b>x</b")).toThrow("Unclosed end tag at byte offset 4");
    expect(() => parseHtml('<a href="x>y</a>')).toThrow("Unclosed start tag at byte offset 0");
  });
});

describe("legacy Markdown and detection", () => {
  it("parses the old Markdown mode", () => {
    expect(parseMarkdownLegacy("*b* _i_ `c` [l](https://l.io)")).toEqual({
      text: "b i c l",
      entities: [
        { type: "bold", offset: 0, length: 1 },
        { type: "italic", offset: 2, length: 1 },
        { type: "code", offset: 4, length: 1 },
        { type: "text_link", offset: 6, length: 1, url: "https://l.io" },
      ],
    });
    expect(() => parseMarkdownLegacy("snake_case")).toThrow(
      "Can't find end of the entity starting at byte offset 5",
    );
  });

  it("detects commands, mentions, hashtags, urls and emails", () => {
    const text = "/start@lobu_bot hi @bob #tag see https://a.io/x. mail me@x.org";
    expect(
      detectEntities(text).map((e) => [e.type, text.slice(e.offset, e.offset + e.length)]),
    ).toEqual([
      ["bot_command", "/start@lobu_bot"],
      ["mention", "@bob"],
      ["hashtag", "#tag"],
      ["url", "https://a.io/x"],
      ["email", "me@x.org"],
    ]);
  });
});
