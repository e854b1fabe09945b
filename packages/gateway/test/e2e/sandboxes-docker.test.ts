import { readFileSync } from "node:fs";
import { join } from "node:path";
import { dockerAvailable, ensureHostSandboxImage } from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  REAL_KEY,
  replyOf,
  scriptBash,
  startWorld,
  toolOutputs,
  type World,
} from "./sandboxes-kit.ts";

/**
 * A real `lobu run` with `sandbox.driver = "docker"`: the real worker in a
 * container, the model reached through the egress socket and the relay, the
 * agent's bash in the container; stop (container removed) and wake on the
 * same volume. The attacker fixture suite is test/sandbox/docker-isolation.test.ts.
 */

const engine = process.platform === "linux" ? dockerAvailable() : { ok: false, why: "not Linux" };
if (!engine.ok) console.warn(`docker end-to-end suite skipped: ${engine.why} (start dockerd)`);

describe.skipIf(!engine.ok)("docker sandboxes through the whole gateway (real worker)", () => {
  let w: World;

  beforeAll(async () => {
    const image = ensureHostSandboxImage();
    w = await startWorld({
      driver: "docker",
      toml: `idle_timeout = "10m"\nmemory_mb = 512\npids = 128\n[sandbox.docker]\nimage = "${image}"\nruntime = "runc"\n`,
    });
  }, 120_000);
  afterAll(() => w?.close());

  it("runs a turn in a container: the agent's bash works, as its own uid, with no network", async () => {
    scriptBash(w.llm, "take a note", [
      "echo remembered > note.txt && id -u && cat /proc/net/dev | tail -n +3 | cut -d: -f1",
    ]);
    expect(replyOf(await w.chat("alice", "take a note"))).toBe("ok");
    const out = toolOutputs(w.llm, "take a note").join("\n");
    const uid = Number(/^(\d+)$/m.exec(out)?.[1]);
    expect(uid).toBeGreaterThanOrEqual(400_000);
    expect(out).toMatch(/^\s*lo\s*$/m);
    expect(out).not.toMatch(/eth0/);
    const box = await w.sandboxOf("alice");
    expect(box.state).toBe("running");
    expect(readFileSync(join(w.gw.dataDir, "volumes", box.id, "note.txt"), "utf8")).toBe(
      "remembered\n",
    );
  });

  it("scales to zero and wakes on the same volume with the conversation intact", async () => {
    const box = await w.sandboxOf("alice");
    const stopped = await w.cli(["sandboxes", "stop", box.id]);
    expect(stopped.code, stopped.stderr).toBe(0);
    scriptBash(w.llm, "read the note", ["cat note.txt"]);
    expect(replyOf(await w.chat("alice", "read the note"))).toBe("ok");
    expect(toolOutputs(w.llm, "read the note").join("\n")).toContain("remembered");
    expect((await w.sandboxOf("alice")).starts).toBeGreaterThanOrEqual(2);
    // The woken worker sent the model the whole conversation, the first turn included.
    const woken = w.llm.requests.find((r) => r.lastUserText === "read the note")!;
    expect(JSON.stringify(woken.body.messages)).toContain("take a note");
    // The worker sent a placeholder; the relay put the real key in on the way out.
    expect(woken.apiKey).toBe(REAL_KEY);
  });
});
