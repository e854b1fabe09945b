import { describe, expect, it } from "vitest";
import {
  approvalDisplay,
  canonicalJson,
  hasHiddenCharacters,
  inputDigest,
  inputText,
  MAX_APPROVAL_DISPLAY_CHARS,
  visibleText,
} from "../src/index.ts";

/** Everything a person approves goes through visibleText: nothing it shows can hide anything. */
describe("visibleText", () => {
  it("leaves ordinary text alone", () => {
    for (const text of [
      "ls -la /tmp",
      "echo 'héllo wörld' | grep -c ö",
      "for i in 1 2 3; do\n  echo $i\ndone",
      "日本語のテキスト",
      "emoji 🎉 ok",
    ]) {
      expect(visibleText(text)).toBe(text);
      expect(hasHiddenCharacters(text)).toBe(false);
    }
  });

  it("shows a run of spaces inside a line with its length", () => {
    expect(visibleText(`echo hi${" ".repeat(300)}; rm -rf ~/x`)).toBe("echo hi⟦␠×300⟧; rm -rf ~/x");
    expect(visibleText("a       b")).toBe("a       b"); // 7: shorter than a run
    expect(visibleText("a        b")).toBe("a⟦␠×8⟧b");
  });

  it("keeps indentation, but not indentation deep enough to push text away", () => {
    expect(visibleText("if x:\n        return 1")).toBe("if x:\n        return 1");
    expect(visibleText(`x\n${" ".repeat(41)}rm -rf /`)).toBe("x\n⟦␠×41⟧rm -rf /");
  });

  it("shows spaces at the end of a line", () => {
    expect(visibleText("rm -rf foo \nnext")).toBe("rm -rf foo⟦␠⟧\nnext");
    expect(visibleText("path   ")).toBe("path⟦␠×3⟧");
    expect(visibleText("   ")).toBe("⟦␠×3⟧");
  });

  it("shows a run of any other invisible character with its length, like spaces", () => {
    // A run of NBSP or ideographic spaces must not push a trailing command out of sight either.
    expect(visibleText(`echo hi${"\u00a0".repeat(300)}; rm -rf ~/x`)).toBe(
      "echo hi⟦U+00A0 NBSP×300⟧; rm -rf ~/x",
    );
    expect(visibleText(`a${"\u3000".repeat(2)}b`)).toBe("a⟦U+3000 IDEOGRAPHIC SPACE×2⟧b");
    expect(visibleText("\u200b".repeat(50))).toBe("⟦U+200B ZWSP×50⟧");
    expect(visibleText("\r\r\rx")).toBe("⟦\\r×3⟧x");
    expect(visibleText("\u{E0041}\u{E0041}")).toBe("⟦U+E0041×2⟧");
    // Different characters stay apart; one stays a single mark.
    expect(visibleText("\u200b\u200c")).toBe("⟦U+200B ZWSP⟧⟦U+200C ZWNJ⟧");
    expect(visibleText("a\u00a0b")).toBe("a⟦U+00A0 NBSP⟧b");
  });

  it("shows tabs", () => {
    expect(visibleText("a\tb")).toBe("a⟦\\t⟧b");
    expect(visibleText("a\t\t\tb")).toBe("a⟦\\t×3⟧b");
  });

  it("shows CR, NUL and other control characters", () => {
    expect(visibleText("safe\rrm -rf /")).toBe("safe⟦\\r⟧rm -rf /");
    expect(visibleText("a\r\nb")).toBe("a⟦\\r⟧\nb");
    expect(visibleText("a\0b")).toBe("a⟦\\0⟧b");
    expect(visibleText("bell\x07")).toBe("bell⟦\\a⟧");
    expect(visibleText("\x01\x7f\x85")).toBe("⟦\\x01⟧⟦\\x7f⟧⟦\\x85⟧");
    expect(visibleText("a\vb\fc\bd")).toBe("a⟦\\v⟧b⟦\\f⟧c⟦\\b⟧d");
  });

  it("shows ANSI escape sequences (they could redraw a terminal)", () => {
    expect(visibleText("\x1b[2K\x1b[1Gsafe")).toBe("⟦ESC⟧[2K⟦ESC⟧[1Gsafe");
    expect(visibleText("\x9b31m")).toBe("⟦\\x9b⟧31m");
  });

  it("shows bidi controls (text that reads in another order than it runs)", () => {
    expect(visibleText("echo \u202eolleh")).toBe("echo ⟦U+202E RLO⟧olleh");
    for (const [cp, name] of [
      [0x202a, "LRE"],
      [0x202b, "RLE"],
      [0x202c, "PDF"],
      [0x202d, "LRO"],
      [0x2066, "LRI"],
      [0x2067, "RLI"],
      [0x2068, "FSI"],
      [0x2069, "PDI"],
      [0x200e, "LRM"],
      [0x200f, "RLM"],
      [0x061c, "ALM"],
    ] as const) {
      expect(visibleText(`x${String.fromCodePoint(cp)}y`)).toBe(
        `x⟦U+${cp.toString(16).toUpperCase().padStart(4, "0")} ${name}⟧y`,
      );
    }
  });

  it("shows zero-width and invisible characters", () => {
    expect(visibleText("rm\u200b -rf")).toBe("rm⟦U+200B ZWSP⟧ -rf");
    expect(visibleText("a\u200cb\u200dc\u2060d\ufeffe")).toBe(
      "a⟦U+200C ZWNJ⟧b⟦U+200D ZWJ⟧c⟦U+2060 WJ⟧d⟦U+FEFF BOM⟧e",
    );
    expect(visibleText("soft\u00adhyphen")).toBe("soft⟦U+00AD SOFT HYPHEN⟧hyphen");
    // Tag characters (invisible text for a model) and variation selectors.
    expect(visibleText("a\u{e0041}b")).toBe("a⟦U+E0041⟧b");
    expect(visibleText("a\ufe0fb")).toBe("a⟦U+FE0F⟧b");
    expect(visibleText("\u3164")).toBe("⟦U+3164 HANGUL FILLER⟧");
  });

  it("shows spaces that are not U+0020 and line separators", () => {
    expect(visibleText("rm\u00a0-rf")).toBe("rm⟦U+00A0 NBSP⟧-rf");
    expect(visibleText("a\u2003b\u3000c")).toBe("a⟦U+2003 EM SPACE⟧b⟦U+3000 IDEOGRAPHIC SPACE⟧c");
    expect(visibleText("a\u2028b\u2029c")).toBe(
      "a⟦U+2028 LINE SEPARATOR⟧b⟦U+2029 PARAGRAPH SEPARATOR⟧c",
    );
  });

  it("shows private-use code points and lone surrogates", () => {
    expect(visibleText("a\ue000b")).toBe("a⟦U+E000⟧b");
    expect(visibleText("a\ud800b")).toBe("a⟦U+D800⟧b");
  });

  it("shows a pile of combining marks mark by mark, but keeps ordinary accents", () => {
    expect(visibleText("cafe\u0301")).toBe("cafe\u0301");
    expect(visibleText(`x${"\u0336".repeat(6)}`)).toBe(`x${"⟦U+0336⟧".repeat(6)}`);
  });

  it("shows runs of line breaks with their length", () => {
    expect(visibleText("a\n\nb")).toBe("a\n\nb");
    expect(visibleText(`ls${"\n".repeat(200)}rm -rf ~`)).toBe("ls\n⟦↵×200⟧\nrm -rf ~");
  });

  it("marks a literal ⟦, so every ⟦ a reader sees starts a mark", () => {
    expect(visibleText("echo ⟦␠×3⟧")).toBe("echo ⟦U+27E6⟧␠×3⟧");
  });
});

describe("inputText", () => {
  it("shows each field on its line, whole", () => {
    expect(inputText({ command: `echo hi${" ".repeat(300)}; rm -rf ~/x`, timeout: 30 })).toBe(
      "command: echo hi⟦␠×300⟧; rm -rf ~/x\ntimeout: 30",
    );
  });

  it("indents multi-line strings below their name, so a line cannot pose as a field", () => {
    expect(inputText({ path: "a.sh", content: "echo one\npath: /etc/passwd\n" })).toBe(
      "path: a.sh\ncontent:\n  echo one\n  path: /etc/passwd\n  ",
    );
  });

  it("quotes strings that could be read as something else", () => {
    expect(inputText({ a: "", b: "42", c: "true", d: " lead", e: "trail " })).toBe(
      'a: ""\nb: "42"\nc: "true"\nd: " lead"\ne: "trail "',
    );
    expect(inputText({ n: 42, t: true, z: null })).toBe("n: 42\nt: true\nz: null");
  });

  it("nests objects and lists", () => {
    expect(
      inputText({
        path: "x.ts",
        edits: [
          { oldText: "a", newText: "b" },
          { oldText: "c\nd", newText: "e" },
        ],
        opts: {},
        list: [],
      }),
    ).toBe(
      [
        "path: x.ts",
        "edits:",
        "  - oldText: a",
        "    newText: b",
        "  - oldText:",
        "      c",
        "      d",
        "    newText: e",
        "opts: {}",
        "list: []",
      ].join("\n"),
    );
  });

  it("makes hidden characters in keys visible too", () => {
    expect(inputText({ "com\u202emand": "x" })).toBe('"com⟦U+202E RLO⟧mand": x');
  });

  it("shows inputs that are not objects", () => {
    expect(inputText("echo hi")).toBe("echo hi");
    expect(inputText(["a", 1])).toBe("- a\n- 1");
    expect(inputText(null)).toBe("null");
  });
});

describe("approval display and digest", () => {
  it("binds to the input regardless of key order", () => {
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] })).toBe('{"a":[{"c":3,"d":2}],"b":1}');
    expect(inputDigest({ a: 1, b: 2 })).toBe(inputDigest({ b: 2, a: 1 }));
    expect(inputDigest({ command: "ls" })).not.toBe(inputDigest({ command: "ls " }));
    expect(inputDigest({ command: "ls" })).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it("summarises without quoting the input", () => {
    const shown = approvalDisplay("bash", { command: "rm -rf ~/x" });
    expect(shown).toMatchObject({ display: "command: rm -rf ~/x", complete: true });
    expect(shown.summary).toBe("bash: 1 line, 19 characters");
  });

  it("flags an input too long to show as incomplete", () => {
    const shown = approvalDisplay("write", {
      path: "big",
      content: "x\n".repeat(MAX_APPROVAL_DISPLAY_CHARS),
    });
    expect(shown.complete).toBe(false);
    expect(shown.display).toMatch(/⟦… [\d,]+ more characters not shown⟧$/);
    expect(shown.summary).toContain("too long to show in full");
  });

  it("does not even render an input whose JSON is far too long", () => {
    const huge = { command: " ".repeat(4 * MAX_APPROVAL_DISPLAY_CHARS + 1) };
    const shown = approvalDisplay("bash", huge);
    expect(shown.complete).toBe(false);
    expect(shown.display.length).toBeLessThan(MAX_APPROVAL_DISPLAY_CHARS + 200);
    expect(shown.summary).toMatch(/^bash: [\d,]+ characters of JSON \(too long to show in full\)$/);
    expect(shown.inputDigest).toBe(inputDigest(huge));
  });
});
