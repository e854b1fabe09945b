import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { VIRTUAL_TOOL_NAMES } from "../../src/virtual/index.ts";
import { runTool, toolError, workspace } from "./helpers.ts";

// A 1x1 transparent PNG.
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=",
  "base64",
);

async function project() {
  const ws = await workspace();
  await ws.exec(
    [
      "mkdir -p src/lib node_modules/dep .git",
      "printf 'export function hello() {\\n  return \"Hello\";\\n}\\n' > src/hello.ts",
      "printf 'import { hello } from \"./hello\";\\nconsole.log(hello());\\n' > src/main.ts",
      "printf 'export const x = 1;\\n' > src/lib/util.spec.ts",
      "printf 'hello from a dependency\\n' > node_modules/dep/index.ts",
      "printf 'hello from git\\n' > .git/HEAD",
      "printf 'title: Hello\\n' > README.md",
    ].join(" && "),
  );
  return ws;
}

describe("the seven tools on the virtual filesystem", () => {
  it("provides every standard pi tool name", async () => {
    const ws = await workspace();
    expect(ws.tools().map((t) => t.name)).toEqual([...VIRTUAL_TOOL_NAMES]);
    expect(ws.tools(undefined, ["read", "grep"]).map((t) => t.name)).toEqual(["read", "grep"]);
  });

  it("write creates parent directories; read honours offset and limit", async () => {
    const ws = await workspace();
    const written = await runTool(ws, "write", { path: "a/b/c.txt", content: "1\n2\n3\n4\n" });
    expect(written.text).toContain("Successfully wrote");
    expect(readFileSync(join(ws.volumeDir, "a/b/c.txt"), "utf8")).toBe("1\n2\n3\n4\n");
    const part = await runTool(ws, "read", { path: "/workspace/a/b/c.txt", offset: 2, limit: 2 });
    expect(part.text).toMatch(/^2\n3\n/);
    expect(await toolError(ws, "read", { path: "missing.txt" })).toMatch(/missing\.txt/);
    expect(await toolError(ws, "read", { path: "a" })).toMatch(/directory/i);
  });

  it("read sends images as attachments", async () => {
    const ws = await workspace();
    await ws.exec("true");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(join(ws.volumeDir, "dot.png"), PNG);
    const tool = ws.tools().find((t) => t.name === "read")!;
    const result = await tool.execute("id", { path: "dot.png" }, undefined, undefined, undefined!);
    expect(result.content.some((c: { type: string }) => c.type === "image")).toBe(true);
  });

  it("edit replaces exact text and reports a diff", async () => {
    const ws = await project();
    const r = await runTool(ws, "edit", {
      path: "src/hello.ts",
      edits: [{ oldText: 'return "Hello";', newText: 'return "Hi";' }],
    });
    expect(r.text).toContain("Successfully replaced");
    expect((r.details as { diff: string }).diff).toContain('"Hi"');
    expect(readFileSync(join(ws.volumeDir, "src/hello.ts"), "utf8")).toContain('return "Hi";');
    expect(
      await toolError(ws, "edit", {
        path: "src/hello.ts",
        edits: [{ oldText: "not there", newText: "x" }],
      }),
    ).toMatch(/not find|not found/i);
  });

  it("ls lists entries with directories marked", async () => {
    const ws = await project();
    const r = await runTool(ws, "ls", { path: "src" });
    expect(r.text.split("\n")).toEqual(["hello.ts", "lib/", "main.ts"]);
    expect(await toolError(ws, "ls", { path: "nope" })).toMatch(/not found/i);
  });

  it("find matches names or paths, skipping node_modules and .git", async () => {
    const ws = await project();
    expect((await runTool(ws, "find", { pattern: "*.ts" })).text.split("\n").sort()).toEqual([
      "src/hello.ts",
      "src/lib/util.spec.ts",
      "src/main.ts",
    ]);
    expect((await runTool(ws, "find", { pattern: "src/**/*.spec.ts" })).text).toBe(
      "src/lib/util.spec.ts",
    );
    expect((await runTool(ws, "find", { pattern: "*.ts", path: "src/lib" })).text).toBe(
      "util.spec.ts",
    );
    expect((await runTool(ws, "find", { pattern: "*.ts", limit: 1 })).text).toContain(
      "1 results limit reached",
    );
  });

  it("grep searches contents with pi's output format", async () => {
    const ws = await project();
    expect((await runTool(ws, "grep", { pattern: "hello" })).text.split("\n")).toEqual([
      "src/hello.ts:1: export function hello() {",
      'src/main.ts:1: import { hello } from "./hello";',
      "src/main.ts:2: console.log(hello());",
    ]);
    expect(
      (await runTool(ws, "grep", { pattern: "HELLO", ignoreCase: true, glob: "*.md" })).text,
    ).toBe("README.md:1: title: Hello");
    expect((await runTool(ws, "grep", { pattern: "(hello());", literal: true })).text).toBe(
      "src/main.ts:2: console.log(hello());",
    );
    expect(
      (await runTool(ws, "grep", { pattern: "return", path: "src/hello.ts", context: 1 })).text,
    ).toBe('hello.ts-1- export function hello() {\nhello.ts:2:   return "Hello";\nhello.ts-3- }');
    const limited = await runTool(ws, "grep", { pattern: "hello", limit: 1 });
    expect(limited.text).toContain("1 matches limit reached");
    expect((await runTool(ws, "grep", { pattern: "zzz" })).text).toBe("No matches found");
    expect(await toolError(ws, "grep", { pattern: "(unclosed" })).toMatch(/Invalid regex/);
  });

  it("grep runs patterns that would backtrack catastrophically in linear time", async () => {
    const ws = await workspace();
    await runTool(ws, "write", { path: "evil.txt", content: `${"a".repeat(50_000)}!\n` });
    expect((await runTool(ws, "grep", { pattern: "^(a+)+$" })).text).toBe("No matches found");
  });
});
