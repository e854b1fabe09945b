import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  noticesOf,
  replyOf,
  scriptBash,
  startWorld,
  toolOutputs,
  until,
  type World,
} from "./sandboxes-kit.ts";

/**
 * Self-repair and operator resets, end to end. An agent that wrecks its own
 * sandbox wrecks only that sandbox: the next session starts from a clean runtime
 * and the last good snapshot of the volume, and the user is told.
 */

const SNAPSHOT_NOTICE =
  /^Your workspace was restored from the snapshot of \d{4}-\d\d-\d\d \d\d:\d\d UTC because /;

describe("process sandboxes repair themselves", () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld({ driver: "process", toml: `idle_timeout = "10m"\ndisk_mb = 32\n` });
  });
  afterAll(() => w?.close());

  it("restores the last good snapshot after the agent kills its own worker repeatedly", async () => {
    scriptBash(w.llm, "keep this", ["echo precious > keep.txt"]);
    expect(replyOf(await w.chat("kai", "keep this"))).toBe("ok");
    const kill = {
      toolCalls: [{ name: "bash", input: { command: "echo oops > damage.txt; kill -9 $PPID" } }],
    };
    w.llm.when((r) => r.lastUserText === "self destruct", kill, kill, { text: "still here" });

    const events = await w.chat("kai", "self destruct");
    expect(replyOf(events)).toBe("still here");
    const notices = noticesOf(events);
    expect(notices.at(-1)).toMatch(SNAPSHOT_NOTICE);
    expect(notices.at(-1)).toMatch(/its agent crashed 2 times in a row\.$/);

    scriptBash(w.llm, "look around", ["ls; cat keep.txt"]);
    expect(replyOf(await w.chat("kai", "look around"))).toBe("ok");
    const listing = toolOutputs(w.llm, "look around")[0]!;
    expect(listing).toContain("precious");
    expect(listing).not.toContain("damage.txt");

    const sb = await w.sandboxOf("kai");
    expect(sb.lastRepair).toMatchObject({
      reason: "its agent crashed 2 times in a row",
      by: "system",
    });
    const records = await w.audit("sandbox.repaired");
    expect(records.find((r) => r.sandboxId === sb.id)).toMatchObject({ actor: "system" });
    // The broken volume is kept aside for the operator.
    expect(existsSync(join(w.gw.dataDir, "snapshots", sb.id, "broken"))).toBe(true);
  });

  it("restores the last good snapshot after the agent fills its disk", async () => {
    scriptBash(w.llm, "keep mine", ["echo mine > keep.txt"]);
    expect(replyOf(await w.chat("dee", "keep mine"))).toBe("ok");
    scriptBash(w.llm, "fill the disk", [
      "dd if=/dev/zero of=big bs=1M count=64 2>&1 | tail -1; dd if=/dev/zero of=big2 bs=1k count=8000 2>&1 | tail -1; for i in $(seq 1 50); do echo x > f$i || break; done",
    ]);
    const filled = await w.chat("dee", "fill the disk");
    expect(toolOutputs(w.llm, "fill the disk")[0]).toMatch(/No space left on device/);
    // Whatever the agent manages to say, the full disk is noticed...
    expect(filled.at(-1)?.type === "error" || replyOf(filled) === "ok").toBe(true);

    const next = await w.chat("dee", "are you fine?");
    expect(replyOf(next)).toBe("echo: are you fine?");
    expect(noticesOf(next).at(-1)).toMatch(SNAPSHOT_NOTICE);
    expect(noticesOf(next).at(-1)).toMatch(/its disk was full\.$/);
    scriptBash(w.llm, "check files", ["ls; cat keep.txt; df -k . | tail -1"]);
    await w.chat("dee", "check files");
    const out = toolOutputs(w.llm, "check files")[0]!;
    expect(out).toContain("mine");
    expect(out).not.toMatch(/\bbig\b/);
  });

  it("is not bothered by a shell config the agent broke", async () => {
    scriptBash(w.llm, "break my shell", [
      'for f in .bashrc .bash_profile .bash_login .profile; do printf "kill -9 \\$PPID\\nexit 7\\n" > $f; done; echo broken',
    ]);
    expect(replyOf(await w.chat("bea", "break my shell"))).toBe("ok");
    await w.gw.api(`/api/v1/sandboxes/${(await w.sandboxOf("bea")).id}/stop`, { method: "POST" });
    scriptBash(w.llm, "still work?", ["echo shell-works; cat .bashrc | head -1"]);
    const events = await w.chat("bea", "still work?");
    expect(replyOf(events)).toBe("ok");
    expect(noticesOf(events)).toEqual([]);
    expect(toolOutputs(w.llm, "still work?")[0]).toMatch(/^shell-works\nkill -9/);
  });

  it("cannot delete the runtime it depends on", async () => {
    scriptBash(w.llm, "delete your runtime", [
      'rm -rf "$(dirname "$(command -v node)")" /usr/bin/env 2>&1 | head -2; touch /usr/x 2>&1; command -v node',
    ]);
    expect(replyOf(await w.chat("rho", "delete your runtime"))).toBe("ok");
    expect(toolOutputs(w.llm, "delete your runtime")[0]).toMatch(/Read-only file system/);
    expect(replyOf(await w.chat("rho", "hello after"))).toBe("echo: hello after");
  });
});

describe("virtual sandboxes repair themselves", () => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld({ driver: "virtual", toml: `idle_timeout = "10m"\ndisk_mb = 32\n` });
  });
  afterAll(() => w?.close());

  it("restores the last good snapshot when the agent destroys its saved state", async () => {
    scriptBash(w.llm, "keep this", ["echo precious > keep.txt"]);
    expect(replyOf(await w.chat("vic", "keep this"))).toBe("ok");
    scriptBash(w.llm, "wreck yourself", ["rm -rf .lobu; echo garbage > .lobu; echo done"]);
    // The damage is found when the worker next touches its state (this turn or the
    // next one); the gateway repairs from the snapshot and answers on the restored
    // workspace, telling the person what happened.
    const wrecked = await w.chat("vic", "wreck yourself");
    const next = await w.chat("vic", "hello again");
    expect(replyOf(next)).toBe("echo: hello again");
    const notices = [...noticesOf(wrecked), ...noticesOf(next)];
    const repaired = notices.filter((n) => SNAPSHOT_NOTICE.test(n));
    expect(repaired, JSON.stringify(notices)).toHaveLength(1);
    expect(repaired[0]).toMatch(/its saved state was damaged\.$/);
    scriptBash(w.llm, "look", ["cat keep.txt; ls -a"]);
    await w.chat("vic", "look");
    expect(toolOutputs(w.llm, "look")[0]).toMatch(/^precious\n/);
    // The conversation itself came back with the snapshot.
    expect(JSON.stringify(w.llm.requests.at(-1)!.body.messages)).toContain("keep this");
  });
});

describe.each(["process", "virtual"] as const)("operator reset (%s)", (driver) => {
  let w: World;
  beforeAll(async () => {
    w = await startWorld({
      driver,
      toml: `idle_timeout = "10m"\n[agents.default.secrets]\nGH_TOKEN = { secret = "github", hosts = ["api.github.com"] }\n`,
    });
    const res = await w.gw.api("/api/v1/secrets/github", {
      method: "PUT",
      body: JSON.stringify({ value: "ghp_operatorResetSecret000000000000" }),
    });
    expect(res.status).toBe(200);
  });
  afterAll(() => w?.close());

  it("restores the last good snapshot, revokes placeholders and tells the user", async () => {
    scriptBash(w.llm, "step one", ["echo one > one.txt; echo token=$GH_TOKEN"]);
    expect(replyOf(await w.chat("ora", "step one"))).toBe("ok");
    const before = /token=(\S+)/.exec(toolOutputs(w.llm, "step one")[0]!)![1]!;
    expect(before).toMatch(/^lobu_secret_/);
    // Snapshots are taken right after a successful turn, in the background.
    const sb = await until(async () => {
      const s = await w.sandboxOf("ora");
      return s.snapshots?.count === 1 ? s : undefined;
    });
    // Changes after the snapshot (snapshots are at most one a minute).
    scriptBash(w.llm, "step two", ["echo two > two.txt"]);
    expect(replyOf(await w.chat("ora", "step two"))).toBe("ok");

    const r = await w.cli(["sandboxes", "reset", sb.id]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(
        `^reset ${sb.id}: restored the snapshot of .* UTC; it was running and was stopped; [1-9]\\d* placeholders? revoked`,
      ),
    );
    expect((await w.sandboxOf("ora")).state).toBe("stopped");

    scriptBash(w.llm, "step three", ["ls; echo token=$GH_TOKEN"]);
    const events = await w.chat("ora", "step three");
    expect(noticesOf(events)).toEqual([
      expect.stringMatching(
        /^Your workspace was restored by an administrator from the snapshot of .* UTC\.$/,
      ),
    ]);
    const out = toolOutputs(w.llm, "step three")[0]!;
    expect(out).toContain("one.txt");
    expect(out).not.toContain("two.txt");
    const after = /token=(\S+)/.exec(out)![1]!;
    expect(after).toMatch(/^lobu_secret_/);
    expect(after).not.toBe(before);

    const records = await w.audit("sandbox.reset");
    expect(records[0]).toMatchObject({ sandboxId: sb.id, details: { wipe: false } });
    expect(
      (records[0]!.details as { revokedPlaceholders: number }).revokedPlaceholders,
    ).toBeGreaterThan(0);
  });

  it("wipes a sandbox entirely with --wipe", async () => {
    scriptBash(w.llm, "make files", ["echo a > a.txt"]);
    await w.chat("wes", "make files");
    const sb = await w.sandboxOf("wes");
    const r = await w.cli(["sandboxes", "reset", sb.id, "--wipe", "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ id: sb.id, wiped: true, restored: "wiped" });
    const status = await w.sandboxOf("wes");
    expect(status.snapshots?.count).toBe(0);
    const vol = join(w.gw.dataDir, "volumes", sb.id);
    expect(readdirSync(vol)).toEqual([]);

    scriptBash(w.llm, "what is here", ["ls -A | wc -l"]);
    const events = await w.chat("wes", "what is here");
    expect(noticesOf(events)).toEqual([
      "Your workspace was wiped by an administrator: you are starting from an empty workspace.",
    ]);
    // A fresh conversation context: the model no longer sees the earlier turns.
    expect(JSON.stringify(w.llm.requests.at(-1)!.body.messages)).not.toContain("make files");
  });

  it("refuses to restore a sandbox that has no snapshot, and names the way out", async () => {
    w.llm.when((r) => r.lastUserText === "fail at once", {
      error: { status: 400, message: "scripted failure" },
    });
    await w.chat("neo", "fail at once");
    const sb = await until(async () => (await w.sandboxes()).find((s) => s.key.userId === "neo"));
    const res = await w.gw.api(`/api/v1/sandboxes/${sb.id}/reset`, { method: "POST" });
    expect(res.status).toBe(409);
    const body = (await res.json()) as { error: { code: string; hint: string } };
    expect(body.error.code).toBe("no_snapshot");
    expect(body.error.hint).toContain(`lobu sandboxes reset ${sb.id} --wipe`);
    expect((await w.gw.api("/api/v1/sandboxes/sb_nope/reset", { method: "POST" })).status).toBe(
      404,
    );
    const bad = await w.gw.api(`/api/v1/sandboxes/${sb.id}/reset`, {
      method: "POST",
      body: JSON.stringify({ wipe: "yes" }),
    });
    expect(bad.status).toBe(400);
  });
});
