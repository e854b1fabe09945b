import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runTool, tempDir, workspace } from "./helpers.ts";

describe("persistence and isolation", () => {
  it("keeps files across dispose and re-creation from the same volumeDir", async () => {
    const first = await workspace();
    await first.exec(
      "mkdir -p src && echo 'export const x = 1;' > src/x.ts && ln -s src/x.ts link",
    );
    await runTool(first, "write", { path: "notes.md", content: "# notes\n" });
    await first.dispose();

    expect(readFileSync(join(first.volumeDir, "src", "x.ts"), "utf8")).toBe(
      "export const x = 1;\n",
    );
    const again = await workspace({ volumeDir: first.volumeDir });
    expect((await runTool(again, "read", { path: "src/x.ts" })).text).toBe("export const x = 1;\n");
    expect((await again.exec("cat link notes.md")).stdout).toBe("export const x = 1;\n# notes\n");
  });

  it("keeps two workspaces apart", async () => {
    const root = await tempDir();
    const alice = await workspace({ volumeDir: join(root, "alice") });
    const bob = await workspace({ volumeDir: join(root, "bob") });
    await alice.exec("echo alice-only > secret.txt");

    const r = await bob.exec(
      "cat /workspace/secret.txt; ls -a /workspace; cat ../alice/secret.txt",
    );
    expect(r.stdout).not.toContain("alice-only");
    expect(r.stdout).not.toContain("secret.txt");
    expect((await runTool(bob, "grep", { pattern: "alice-only" })).text).toBe("No matches found");
    expect((await runTool(bob, "find", { pattern: "secret*" })).text).toBe(
      "No files found matching pattern",
    );
    expect((await bob.exec("ln -s ../alice/secret.txt s")).exitCode).not.toBe(0);
    expect((await alice.exec("cat secret.txt")).stdout).toBe("alice-only\n");
  });

  it("still works when the agent replaced /workspace/.tmp with a file", async () => {
    const first = await workspace();
    await first.exec("rm -rf /workspace/.tmp && echo not-a-dir > /workspace/.tmp");
    await first.dispose();
    const again = await workspace({ volumeDir: first.volumeDir });
    expect((await again.exec("cat .tmp")).stdout).toBe("not-a-dir\n");
    expect((await again.exec("echo x > /tmp/y")).stderr).toContain("read-only file system");
  });

  it("creates the volume directory on first use, not before", async () => {
    const ws = await workspace({ volumeDir: join(await tempDir(), "later") });
    ws.tools();
    expect(existsSync(ws.volumeDir)).toBe(false);
    await ws.exec("true");
    expect(existsSync(ws.volumeDir)).toBe(true);
  });
});
