import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runTool, tempDir, toolError, workspace } from "./helpers.ts";

const OUTSIDE = /outside the workspace/;

describe("the agent cannot leave its workspace", () => {
  it("refuses tool paths that climb out with ..", async () => {
    const ws = await workspace();
    for (const path of ["../../etc/passwd", "../workspace/../../etc/hostname", ".."]) {
      expect(await toolError(ws, "read", { path })).toMatch(OUTSIDE);
    }
    expect(await toolError(ws, "write", { path: "../escape.txt", content: "x" })).toMatch(OUTSIDE);
    expect(await toolError(ws, "ls", { path: "../.." })).toMatch(OUTSIDE);
    expect(await toolError(ws, "grep", { pattern: "root", path: "/etc" })).toMatch(OUTSIDE);
    expect(await toolError(ws, "find", { pattern: "*", path: "/" })).toMatch(OUTSIDE);
  });

  it("refuses absolute host paths, even the volume's own host path", async () => {
    const ws = await workspace();
    await ws.exec("echo mine > a.txt");
    const hostPath = join(ws.volumeDir, "a.txt");
    // The test volume lives under the host's /tmp, which the agent sees as its own /tmp.
    expect(await toolError(ws, "read", { path: hostPath })).toMatch(
      hostPath.startsWith("/tmp/") ? /No such file or directory/ : OUTSIDE,
    );
    const repoFile = join(process.cwd(), "package.json");
    expect(await toolError(ws, "read", { path: repoFile })).toMatch(
      repoFile.startsWith("/tmp/") ? /No such file or directory/ : OUTSIDE,
    );
    expect(await toolError(ws, "read", { path: "/proc/self/environ" })).toMatch(OUTSIDE);
    expect(
      await toolError(ws, "edit", { path: "/etc/hosts", edits: [{ oldText: "a", newText: "b" }] }),
    ).toMatch(OUTSIDE);
    const r = await ws.exec(`cat ${hostPath} /etc/passwd /proc/self/environ`);
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout).not.toContain("mine");
    expect(r.stdout).not.toContain("root:");
  });

  it("shows a virtual root with nothing of the host in it", async () => {
    const ws = await workspace();
    const r = await ws.exec("cd ../../..; pwd; ls; cat etc/hostname ../../../etc/passwd");
    expect(r.stdout.split("\n").slice(0, 1)).toEqual(["/"]);
    expect(r.stdout).not.toMatch(/\b(etc|root|var|work)\b/);
    expect(r.stderr).toContain("No such file or directory");
  });

  it("refuses symlinks that point out of the workspace, keeps those that stay in", async () => {
    const ws = await workspace();
    for (const target of ["/etc/passwd", "../..", "../../../../etc", "/tmp/../etc"]) {
      const r = await ws.exec(`ln -s ${target} link`);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toContain("links may only point inside /workspace");
    }
    const ok = await ws.exec(
      "mkdir -p d && echo in > d/f && ln -s /workspace/d/f abs && ln -s d/f rel && cat abs rel",
    );
    expect(ok.stdout).toBe("in\nin\n");
    // Stored relative so the volume means the same wherever it is mounted.
    expect((await ws.exec("readlink abs")).stdout).toBe("d/f\n");
    expect((await runTool(ws, "read", { path: "rel" })).text).toBe("in\n");
  });

  it("does not follow a symlink planted on the host that points outside", async () => {
    const ws = await workspace();
    const secretDir = await tempDir("lobu-secret-");
    writeFileSync(join(secretDir, "secret.txt"), "host secret");
    mkdirSync(ws.volumeDir, { recursive: true });
    symlinkSync(join(secretDir, "secret.txt"), join(ws.volumeDir, "planted"));
    symlinkSync(secretDir, join(ws.volumeDir, "planted-dir"));
    const read = await toolError(ws, "read", { path: "planted" });
    expect(read).not.toContain("host secret");
    expect(read).not.toContain(secretDir);
    const r = await ws.exec("cat planted; ls planted-dir; cat planted-dir/secret.txt");
    expect(r.stdout).not.toContain("host secret");
    expect(r.stdout).not.toContain("secret.txt");
    const grep = await runTool(ws, "grep", { pattern: "host secret" });
    expect(grep.text).toBe("No matches found");
    // Writing through it must not reach the host file either.
    await ws.exec("echo overwritten > planted");
    expect(readFileSync(join(secretDir, "secret.txt"), "utf8")).toBe("host secret");
  });

  it("refuses hard links to files outside", async () => {
    const ws = await workspace();
    const r = await ws.exec("ln /etc/passwd p; ln /proc/self/status s; ls");
    expect(r.stdout).toBe("");
  });

  it("refuses NUL bytes and over-long paths with clear errors", async () => {
    const ws = await workspace();
    expect(await toolError(ws, "read", { path: "a\0b" })).toMatch(/NUL bytes/);
    expect(await toolError(ws, "write", { path: `${"n".repeat(300)}.txt`, content: "x" })).toMatch(
      /File name too long/,
    );
    expect(
      await toolError(ws, "write", { path: `${"d/".repeat(2100)}f.txt`, content: "x" }),
    ).toMatch(/Path too long/);
    const r = await ws.exec(`echo x > ${"n".repeat(300)}; echo rc=$?`);
    expect(r.stdout).not.toBe("rc=0\n");
  });

  it("maps ~ to /workspace, never to the host's home", async () => {
    const ws = await workspace();
    await runTool(ws, "write", { path: "~/notes.txt", content: "home\n" });
    expect(readFileSync(join(ws.volumeDir, "notes.txt"), "utf8")).toBe("home\n");
    expect((await runTool(ws, "read", { path: "~/notes.txt" })).text).toBe("home\n");
    expect((await ws.exec("cat ~/notes.txt")).stdout).toBe("home\n");
  });
});
