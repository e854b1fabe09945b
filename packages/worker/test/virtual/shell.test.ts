import { existsSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ShellPool } from "../../src/virtual/index.ts";
import { runTool, toolError, workspace } from "./helpers.ts";

describe("bash on the virtual shell", () => {
  it("runs in /workspace with HOME=/workspace, the session env and exit codes", async () => {
    const ws = await workspace({ env: { GITHUB_TOKEN: "lobu_secret_placeholder" } });
    const r = await ws.exec('pwd; echo "$HOME|$GITHUB_TOKEN|$TMPDIR"; echo oops >&2; exit 3');
    expect(r.stdout).toBe("/workspace\n/workspace|lobu_secret_placeholder|/tmp\n");
    expect(r.stderr).toBe("oops\n");
    expect(r.exitCode).toBe(3);
  });

  it("picks up a new environment from setEnv (placeholders change between turns)", async () => {
    const ws = await workspace({ env: { A: "1" } });
    ws.setEnv({ B: "2" });
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, not a template.
    expect((await ws.exec('echo "${A:-unset} $B"')).stdout).toBe("unset 2\n");
  });

  it("keeps cd within one command and starts every command in /workspace, like pi's bash", async () => {
    const ws = await workspace();
    expect((await ws.exec("mkdir -p sub && cd sub && pwd")).stdout).toBe("/workspace/sub\n");
    expect((await ws.exec("pwd")).stdout).toBe("/workspace\n");
    expect((await ws.exec("pwd", { cwd: "/workspace/sub" })).stdout).toBe("/workspace/sub\n");
  });

  it("keeps heredoc indentation", async () => {
    const ws = await workspace();
    const r = await ws.exec("cat <<EOF > f.txt\n  indented\nEOF\ncat f.txt");
    expect(r.stdout).toBe("  indented\n");
  });

  it("discards writes to /dev/null and refuses writes outside /workspace and /tmp", async () => {
    const ws = await workspace();
    expect((await ws.exec("echo x > /dev/null; cat /dev/null; echo ok")).stdout).toBe("ok\n");
    const r = await ws.exec("echo x > /etc/motd");
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain("read-only file system");
    expect(r.stderr).toContain("only /workspace and /tmp are writable");
  });

  it("stores /tmp in the volume", async () => {
    const ws = await workspace();
    await ws.exec("echo scratch > /tmp/s.txt");
    expect(readFileSync(join(ws.volumeDir, ".tmp", "s.txt"), "utf8")).toBe("scratch\n");
  });

  it("stops a command at limits.maxCommandMs and reports it as a timeout", async () => {
    const ws = await workspace({ limits: { maxCommandMs: 200 } });
    const r = await ws.exec("sleep 30; echo never");
    expect(r.timedOut).toBe(true);
    expect(r.stdout).toBe("");
    const message = await toolError(ws, "bash", { command: "sleep 30" });
    expect(message).toBe("Command timed out after 0.2 seconds");
  });

  it("honours the model's own shorter timeout", async () => {
    const ws = await workspace();
    const message = await toolError(ws, "bash", { command: "sleep 30", timeout: 0.1 });
    expect(message).toContain("Command timed out after 0.1 seconds");
  });

  it("runs a loop that never yields off the main thread and stops it", async () => {
    const shellPool = new ShellPool({ threads: 2 });
    try {
      const busy = await workspace({ shellPool, limits: { maxCommandMs: 300 } });
      const other = await workspace({ shellPool });
      await Promise.all([busy.exec("true"), other.exec("true")]); // start both threads
      const order: string[] = [];
      const loop = busy.exec("while true; do :; done").then((r) => {
        order.push("loop");
        return r;
      });
      await new Promise((resolve) => setTimeout(resolve, 10)).then(() => order.push("timer"));
      await other.exec("echo hi").then(() => order.push("other"));
      const r = await loop;
      // Stopped by the deadline or by just-bash's command-count cap, whichever comes first.
      expect(r.exitCode).not.toBe(0);
      expect(order).toEqual(["timer", "other", "loop"]);
    } finally {
      await shellPool.close();
    }
  });

  it("fails a command whose shell thread stops, and keeps the workspace usable", async () => {
    const shellPool = new ShellPool({ threads: 1 });
    const ws = await workspace({ shellPool });
    await ws.exec("echo before > f");
    const running = ws.exec("sleep 30");
    await new Promise((resolve) => setTimeout(resolve, 50));
    await shellPool.close();
    const r = await running;
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("run it again");
    expect((await ws.usage()).bytes).toBe(7);
    await expect(ws.exec("true")).rejects.toThrow(/shell pool was closed/);
  });

  it("aborts on the AbortSignal", async () => {
    const ws = await workspace();
    const controller = new AbortController();
    const pending = toolError(ws, "bash", { command: "sleep 30" }, controller.signal);
    setTimeout(() => controller.abort(), 50);
    expect(await pending).toContain("Command aborted");
  });

  it("streams output through onUpdate and fails the tool on a non-zero exit", async () => {
    const ws = await workspace();
    const ok = await runTool(ws, "bash", { command: "echo out; echo err >&2" });
    expect(ok.text).toBe("out\nerr\n");
    expect(ok.updates.join("")).toContain("out");
    const message = await toolError(ws, "bash", { command: "echo partial; exit 7" });
    expect(message).toContain("partial");
    expect(message).toContain("Command exited with code 7");
  });

  it("moves pi's full-output file for truncated output into the session's /tmp", async () => {
    const ws = await workspace();
    const before = new Set(readdirSync(tmpdir()).filter((f) => f.startsWith("pi-bash-")));
    const { text } = await runTool(ws, "bash", { command: "seq 1 30000" });
    const path = /Full output: (\/tmp\/pi-bash-[\w-]+\.log)/.exec(text)?.[1];
    expect(path).toBeDefined();
    const leftOnHost = readdirSync(tmpdir()).filter(
      (f) => f.startsWith("pi-bash-") && !before.has(f),
    );
    expect(leftOnHost).toEqual([]);
    const saved = readFileSync(join(ws.volumeDir, ".tmp", path!.slice("/tmp/".length)), "utf8");
    expect(saved.split("\n")[29999]).toBe("30000");
    const tail = await runTool(ws, "bash", { command: `tail -n 1 ${path}` });
    expect(tail.text).toBe("30000\n");
  });

  it("only hands the model's PI_* session variables to the shell, never the host env", async () => {
    process.env.LOBU_HOST_ONLY_SECRET = "host-secret-value";
    try {
      const ws = await workspace();
      const { text } = await runTool(ws, "bash", {
        command: "env; cat /proc/self/environ 2>&1; printenv LOBU_HOST_ONLY_SECRET",
      }).catch((error: Error) => ({ text: error.message }));
      expect(text).not.toContain("host-secret-value");
      expect(text).not.toContain(process.env.PATH ?? "\0");
    } finally {
      delete process.env.LOBU_HOST_ONLY_SECRET;
    }
  });

  it("refuses work after dispose and aborts what is running", async () => {
    const ws = await workspace();
    const running = ws.exec("sleep 30");
    await new Promise((resolve) => setTimeout(resolve, 50));
    await ws.dispose();
    expect((await running).aborted).toBe(true);
    await expect(ws.exec("true")).rejects.toThrow(/disposed; create a new one/);
    expect(ws.disposed).toBe(true);
    expect(existsSync(ws.volumeDir)).toBe(true);
  });
});
