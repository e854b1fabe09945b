import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, LobuConfig } from "@lobu/core";
import {
  collectEvents,
  LOBU_BIN,
  loopDevicesUnder,
  mountsUnder,
  removeDataDir,
  startMockLlm,
} from "@lobu/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { lockDataDir } from "../../src/datadir/lock.ts";
import { startGateway } from "../../src/gateway.ts";
import { REAL_KEY, replyOf, startWorld, until, type World } from "./sandboxes-kit.ts";

/**
 * What a gateway leaves mounted when it stops: nothing, however it is stopped
 * (SIGTERM, SIGINT, close(), its npm launcher killed, a signal during startup).
 * One killed with SIGKILL cannot clean up; the next start on its data dir does,
 * without touching any other gateway's mounts. Checked against the host's real
 * mount table and loop devices.
 */

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Nothing mounted and no loop device attached under `dir`: what a gateway leaves when it has stopped. */
function released(dir: string): void {
  expect(mountsUnder(dir)).toEqual([]);
  expect(loopDevicesUnder(dir)).toEqual([]);
}

/** The data dir lock is free: no gateway holds it any more. */
function lockFree(dir: string): void {
  lockDataDir(dir).release();
}

describe.skipIf(process.getuid?.() !== 0)(
  "gateway shutdown and mounts (loop-image volumes)",
  () => {
    const worlds: World[] = [];
    afterAll(() => Promise.all(worlds.map((w) => w.close())));
    const world = async () => {
      const w = await startWorld({ driver: "process" });
      worlds.push(w);
      return w;
    };

    it.each(["SIGTERM", "SIGINT"] as const)(
      "%s stops the gateway with nothing left mounted",
      async (signal) => {
        const w = await world();
        expect(replyOf(await w.chat("mo", "hello"))).toBe("echo: hello");
        const volumes = join(w.gw.dataDir, "volumes");
        expect(mountsUnder(volumes)).toHaveLength(1);
        expect(loopDevicesUnder(volumes)).toHaveLength(1);

        await w.gw.kill(signal);
        expect(w.gw.child.exitCode).toBe(0);
        expect(w.gw.output()).toMatch(new RegExp(`${signal}: stopping`));
        released(w.gw.dataDir);
        lockFree(w.gw.dataDir);
      },
    );

    it("a stop signal delivered twice (to the process group, and forwarded by npm) stops it cleanly, not forced", async () => {
      const w = await world();
      expect(replyOf(await w.chat("twice", "hello"))).toBe("echo: hello");
      w.gw.child.kill("SIGTERM");
      // The same request again, well inside the repeat window, while it is stopping.
      await new Promise((r) => setTimeout(r, 200));
      await w.gw.kill("SIGTERM");
      expect(w.gw.output()).not.toContain("forced exit");
      expect(w.gw.child.exitCode).toBe(0);
      released(w.gw.dataDir);
      lockFree(w.gw.dataDir);
    });

    it("after SIGKILL, the next start releases what the killed gateway left, and nothing of another gateway's", async () => {
      const [a, b] = await Promise.all([world(), world()]);
      expect(replyOf(await a.chat("ka", "one"))).toBe("echo: one");
      expect(replyOf(await b.chat("kb", "two"))).toBe("echo: two");
      const bMounts = mountsUnder(b.gw.dataDir);
      expect(bMounts).toHaveLength(1);
      const bSandbox = await b.sandboxOf("kb");

      await a.gw.kill("SIGKILL");
      // A killed gateway cannot clean up: its volume stays mounted.
      expect(mountsUnder(join(a.gw.dataDir, "volumes"))).toHaveLength(1);

      await a.gw.restart();
      // (Startup log lines follow the startup summary.)
      await until(async () =>
        /released mounts a previous run left behind/.test(a.gw.output()) ? true : undefined,
      );
      expect(mountsUnder(a.gw.dataDir)).toEqual([]);
      // A device the dead sandbox still held detaches once its last user is gone.
      await until(async () => (loopDevicesUnder(a.gw.dataDir).length === 0 ? true : undefined));
      // The other gateway's sandbox kept running on its volume.
      expect(mountsUnder(b.gw.dataDir)).toEqual(bMounts);
      expect(isAlive(bSandbox.pid!)).toBe(true);
      expect(replyOf(await b.chat("kb", "still there?"))).toBe("echo: still there?");
      // And the restarted gateway mounts its volume again for the next message.
      expect(replyOf(await a.chat("ka", "back"))).toBe("echo: back");
      expect(mountsUnder(join(a.gw.dataDir, "volumes"))).toHaveLength(1);
    });

    it("a SIGTERM during startup abandons the start and leaves nothing mounted", async () => {
      const dir = mkdtempSync(join(tmpdir(), "lobu-abort-"));
      try {
        const child = spawn(process.execPath, [LOBU_BIN, "run", "--data-dir", dir, "--port", "0"], {
          cwd: dir,
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...process.env, LOBU_LOG_LEVEL: "warn" },
        });
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        // Signalled while it probes the sandbox driver (a trial sandbox with a loop-mounted volume).
        child.stderr.on("data", (d) => {
          out += d;
          if (/checking the \w+ sandbox driver/.test(out) && !child.killed) child.kill("SIGTERM");
        });
        const code = await new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
        expect(out).toMatch(/SIGTERM: abandoning the start/);
        expect(out).not.toMatch(/listening on/);
        expect(code).toBe(0);
        released(dir);
        lockFree(dir);
      } finally {
        removeDataDir(dir);
      }
    });

    it("under npm (npx lobu run), the gateway stops cleanly when npm's shell is killed", async () => {
      const llm = await startMockLlm({ apiKey: REAL_KEY });
      const dir = mkdtempSync(join(tmpdir(), "lobu-npx-"));
      try {
        // npm runs the command under `sh -c` and passes a SIGTERM on to that shell only.
        const shell = spawn(
          "sh",
          [
            "-c",
            '"$@" & wait',
            "sh",
            process.execPath,
            LOBU_BIN,
            "run",
            "--data-dir",
            dir,
            "--port",
            "0",
          ],
          {
            cwd: dir,
            stdio: ["ignore", "pipe", "pipe"],
            env: {
              ...process.env,
              npm_execpath: "/usr/lib/node_modules/npm/bin/npm-cli.js",
              ANTHROPIC_API_KEY: REAL_KEY,
              ANTHROPIC_BASE_URL: llm.url,
              LOBU_LOG_LEVEL: "warn",
            },
          },
        );
        let out = "";
        shell.stderr.on("data", (d) => (out += d));
        const url = await new Promise<string>((resolveUrl) =>
          shell.stdout.on("data", (d) => {
            out += d;
            const m = /listening on (http:\/\/\S+)/.exec(out);
            if (m) resolveUrl(m[1]!);
          }),
        );
        const holder = JSON.parse(readFileSync(join(dir, "lobu.lock.json"), "utf8")) as {
          pid: number;
        };
        const token = readFileSync(join(dir, "admin-token"), "utf8").trim();
        const res = await fetch(`${url}/api/v1/agents/default/messages`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${token}`,
            "content-type": "application/json",
            accept: "text/event-stream",
          },
          body: JSON.stringify({ user: "np", channel: "dev", text: "hi" }),
        });
        expect(replyOf(await collectEvents(res))).toBe("echo: hi");
        expect(mountsUnder(join(dir, "volumes"))).toHaveLength(1);

        shell.kill("SIGKILL");
        await until(async () => (isAlive(holder.pid) ? undefined : true));
        expect(out).toMatch(/npm exited: stopping/);
        released(dir);
        lockFree(dir);
      } finally {
        await llm.close();
        removeDataDir(dir);
      }
    });

    it("close() of an embedded gateway leaves nothing mounted; a second one on its data dir is refused", async () => {
      const llm = await startMockLlm({ apiKey: REAL_KEY });
      const dataDir = mkdtempSync(join(tmpdir(), "lobu-embedded-"));
      const start = () =>
        startGateway({
          config: LobuConfig.parse({ sandbox: { driver: "process" } }),
          dataDir,
          port: 0,
          env: { ANTHROPIC_API_KEY: REAL_KEY, ANTHROPIC_BASE_URL: llm.url },
          log: createLogger("test", { level: "silent" }),
        });
      try {
        const gw = await start();
        await expect(start()).rejects.toMatchObject({
          code: "data_dir_locked",
          message: expect.stringMatching(/this very process/),
        });
        const token = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
        const res = await fetch(`${gw.url}/api/v1/agents/default/messages`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${token}`,
            "content-type": "application/json",
            accept: "text/event-stream",
          },
          body: JSON.stringify({ user: "em", channel: "dev", text: "hi" }),
        });
        expect(replyOf(await collectEvents(res))).toBe("echo: hi");
        expect(mountsUnder(join(dataDir, "volumes"))).toHaveLength(1);
        await gw.close();
        released(dataDir);
        // Closed: the data dir is free for the next gateway.
        await (await start()).close();
      } finally {
        await llm.close();
        removeDataDir(dataDir);
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  },
);
