import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { treeUsage } from "../../src/sandbox/proc.ts";
import {
  gate,
  replyOf,
  type SandboxView,
  scriptBash,
  startWorld,
  toolOutputs,
  until,
  type World,
} from "./sandboxes-kit.ts";

/**
 * Scale to zero, concurrency and operator controls, end to end: a real `lobu
 * run`, real sandboxes running the real worker, for both isolating drivers.
 */

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe.each(["process", "virtual"] as const)("%s sandboxes", (driver) => {
  let w: World;
  // A short idle timeout of its own: elsewhere sandboxes must not stop while a test
  // looks at them, however slow the machine.
  let idle: World;

  beforeAll(async () => {
    [w, idle] = await Promise.all([
      startWorld({ driver, toml: `idle_timeout = "10m"\nmax_concurrent = 2\ndisk_mb = 64\n` }),
      startWorld({ driver, toml: `idle_timeout = "2s"\n` }),
    ]);
  });
  afterAll(() => Promise.all([w?.close(), idle?.close()]));

  it("scale to zero: an idle sandbox stops, and the next message restores the conversation", async () => {
    const w = idle;
    expect(replyOf(await w.chat("ida", "remember the word pomegranate"))).toBe(
      "echo: remember the word pomegranate",
    );
    const first = await w.sandboxOf("ida");
    expect(first.state).toBe("running");
    const stopped = await until(async () => {
      const s = await w.sandboxOf("ida");
      return s.state === "stopped" ? s : undefined;
    });
    expect(stopped.lastExit?.reason).toBe("idle");
    if (driver === "process") expect(isAlive(first.pid!)).toBe(false);

    expect(replyOf(await w.chat("ida", "which word did I give you?"))).toBe(
      "echo: which word did I give you?",
    );
    // The model was given the earlier exchange, reloaded from the volume.
    const transcript = JSON.stringify(w.llm.requests.at(-1)!.body.messages);
    expect(transcript).toContain("remember the word pomegranate");
    expect(transcript).toContain("echo: remember the word pomegranate");
    const again = await w.sandboxOf("ida");
    expect(again.starts).toBe(2);
    if (driver === "process") expect(again.pid).not.toBe(first.pid);
  });

  it("runs different sandboxes in parallel up to max_concurrent; the rest wait in the queue", async () => {
    const gates = new Map(["cc1", "cc2", "cc3"].map((u) => [u, gate()]));
    for (const [user, g] of gates) w.llm.when((r) => r.lastUserText === `hold ${user}`, g.turn);
    const before = w.llm.requests.length;
    const ids = new Map<string, string>();
    for (const user of gates.keys()) ids.set(user, await w.post(user, `hold ${user}`));

    await w.llm.waitForRequests(before + 2, { timeoutMs: 30_000 });
    const arrived = () =>
      w.llm.requests.slice(before).map((r) => r.lastUserText.replace("hold ", ""));
    const running = arrived();
    expect(running).toHaveLength(2);
    const waiting = [...gates.keys()].find((u) => !running.includes(u))!;
    expect((await w.message(ids.get(waiting)!)).status).toBe("queued");
    for (const user of running) expect((await w.message(ids.get(user)!)).status).toBe("running");

    // One finishes: the queued one starts, after it.
    const finished = running[0]!;
    gates.get(finished)!.release();
    const done = await until(async () => {
      const m = await w.message(ids.get(finished)!);
      return m.status === "done" ? m : undefined;
    });
    await w.llm.waitForRequests(before + 3, { timeoutMs: 30_000 });
    expect(arrived()).toContain(waiting);
    for (const g of gates.values()) g.release();
    const last = await until(async () => {
      const m = await w.message(ids.get(waiting)!);
      return m.status === "done" ? m : undefined;
    });
    expect(last.startedAt!).toBeGreaterThanOrEqual(done.completedAt!);
    // The other running one was never held up by the queued one.
    expect((await w.message(ids.get(running[1]!)!)).startedAt!).toBeLessThan(done.completedAt!);
  });

  it("runs the messages of one sandbox one at a time, in order", async () => {
    const g = gate();
    w.llm.when((r) => r.lastUserText === "first of two", g.turn);
    const before = w.llm.requests.length;
    const m1 = await w.post("sol", "first of two");
    const m2 = await w.post("sol", "second of two");
    await w.llm.waitForRequests(before + 1, { timeoutMs: 30_000 });
    expect((await w.message(m2)).status).toBe("queued");
    expect(w.llm.requests.slice(before).map((r) => r.lastUserText)).toEqual(["first of two"]);
    g.release();
    const second = await until(async () => {
      const m = await w.message(m2);
      return m.status === "done" ? m : undefined;
    });
    const first = await w.message(m1);
    expect(first.status).toBe("done");
    expect(second.startedAt!).toBeGreaterThanOrEqual(first.completedAt!);
    // The second turn saw the first one's answer.
    expect(JSON.stringify(w.llm.requests.at(-1)!.body.messages)).toContain("released");
  });

  it("lists sandboxes with real memory and disk figures, and stops one (REST and CLI)", async () => {
    scriptBash(w.llm, "write a megabyte", [
      // (Works in real bash and in the virtual shell alike.)
      's=x; for i in $(seq 1 20); do s=$s$s; done; printf %s "$s" > blob.bin; ls -l blob.bin',
    ]);
    expect(replyOf(await w.chat("opa", "write a megabyte"))).toBe("ok");
    expect(toolOutputs(w.llm, "write a megabyte")[0]).toMatch(/1048576/);
    const s = await w.sandboxOf("opa");
    expect(s.state).toBe("running");
    expect(s.usage?.diskBytes).toBeGreaterThanOrEqual(1_048_576);
    // Memory comes from the kernel (cgroup or /proc), for the sandbox or its shared pool.
    expect(s.usage?.memoryBytes).toBeGreaterThan(20 * 1024 * 1024);
    const rss = (await treeUsage(s.pid!)).memoryBytes;
    expect(rss).toBeGreaterThan(20 * 1024 * 1024);
    if (driver === "virtual") expect(s.usage?.pool?.sandboxes).toBeGreaterThanOrEqual(1);
    else expect(s.usage?.pool).toBeUndefined();
    expect(s.createdAt).toBeLessThanOrEqual(Date.now());

    const list = await w.cli(["sandboxes", "list"]);
    expect(list.code).toBe(0);
    const line = list.stdout.split("\n").find((l) => l.startsWith(s.id))!;
    expect(line).toMatch(/running/);
    expect(line).toMatch(/\d+\.\dM/);

    // An operator can look inside a running process sandbox, as its agent.
    const exec = (body: unknown) =>
      w.gw.api(`/api/v1/sandboxes/${s.id}/exec`, { method: "POST", body: JSON.stringify(body) });
    const ran = await exec({ command: "ls -l blob.bin; id -un" });
    if (driver === "process") {
      expect(ran.status).toBe(200);
      const result = (await ran.json()) as { exitCode: number; output: string };
      expect(result.exitCode).toBe(0);
      expect(result.output).toMatch(/1048576 .*blob\.bin\nagent\n$/);
      expect((await w.audit("sandbox.exec", s.id))[0]?.details).toMatchObject({ exitCode: 0 });
      // A program and its arguments pass through as they are: no shell re-splits them.
      const argv = await exec({ argv: ["printf", "[%s]", "a  b", "$HOME", "*", "it's"] });
      expect(await argv.json()).toMatchObject({ exitCode: 0, output: "[a  b][$HOME][*][it's]" });
      // The CLI the same way, exiting with the command's own exit code.
      const cli = await w.cli([
        "sandboxes",
        "exec",
        s.id,
        "--",
        "sh",
        "-c",
        'printf "%s" "$1"; exit 7',
        "sh",
        "x  y",
      ]);
      expect(cli).toMatchObject({ code: 7, stdout: "x  y" });
      const shell = await w.cli([
        "sandboxes",
        "exec",
        s.id,
        "--shell",
        "ls blob.bin | wc -l; exit 3",
      ]);
      expect(shell).toMatchObject({ code: 3, stdout: "1\n" });
      // A command ended by a signal exits like a shell says: 128+N.
      const killed = await w.cli(["sandboxes", "exec", s.id, "--shell", "kill -TERM $$"]);
      expect(killed.code).toBe(143);
      const late = await w.cli(["sandboxes", "exec", s.id, "--timeout", "1", "--", "sleep", "30"]);
      expect(late.code).toBe(124);
      expect(late.stderr).toMatch(/did not finish within 1s/);
      const both = await w.cli(["sandboxes", "exec", s.id, "--shell", "true", "--", "true"]);
      expect(both.code).toBe(2);
    } else {
      expect(ran.status).toBe(501);
      expect(((await ran.json()) as { error: { code: string } }).error.code).toBe(
        "sandbox_exec_unsupported",
      );
    }
    expect((await exec({ command: "" })).status).toBe(400);
    expect((await exec({ argv: [] })).status).toBe(400);
    expect((await exec({ argv: ["true"], command: "true" })).status).toBe(400);
    expect((await exec({ command: "true", timeoutSec: 0 })).status).toBe(400);

    const stop = await w.cli(["sandboxes", "stop", s.id]);
    expect(stop.stdout.trim()).toBe(`stopped ${s.id}`);
    const after = await w.sandboxOf("opa");
    expect(after.state).toBe("stopped");
    expect(after.lastExit?.reason).toBe("operator");
    // Stopped sandboxes still show the disk they hold (a just-unmounted image may take a moment).
    await until(async () =>
      ((await w.sandboxOf("opa")).usage?.diskBytes ?? 0) >= 1_048_576 ? true : undefined,
    );
    expect((await w.cli(["sandboxes", "stop", s.id])).stdout.trim()).toBe(
      `${s.id} was not running`,
    );
    const missing = await w.gw.api("/api/v1/sandboxes/sb_nope/stop", { method: "POST" });
    expect(missing.status).toBe(404);
    if (driver === "process") expect((await exec({ command: "true" })).status).toBe(409);
    const json = JSON.parse((await w.cli(["sandboxes", "list", "--json"])).stdout) as SandboxView[];
    expect(json.find((x) => x.id === s.id)?.state).toBe("stopped");
  }, 180_000); // a dozen CLI processes: slow on a loaded machine, not a timing check

  it("lists sandboxes a page at a time: limit and cursor walk every sandbox once, in id order", async () => {
    const all = (await w.sandboxes()).map((s) => s.id);
    expect(all.length).toBeGreaterThan(2);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const query = new URLSearchParams({ limit: "2", ...(cursor ? { cursor } : {}) });
      const res = await w.gw.api(`/api/v1/sandboxes?${query}`);
      expect(res.status).toBe(200);
      const page = (await res.json()) as { sandboxes: { id: string }[]; next?: string };
      expect(page.sandboxes.length).toBeLessThanOrEqual(2);
      seen.push(...page.sandboxes.map((s) => s.id));
      cursor = page.next;
    } while (cursor);
    expect(seen).toEqual(all);
    expect(seen).toEqual([...seen].sort());
    // Past the last sandbox: an empty last page.
    const past = await w.gw.api(`/api/v1/sandboxes?cursor=${all.at(-1)}`);
    expect(await past.json()).toEqual({ sandboxes: [] });
  });

  it("keeps every sandbox's volume under the data dir, one directory each", () => {
    const names = readdirSync(join(w.gw.dataDir, "volumes"));
    expect(names.length).toBeGreaterThanOrEqual(4);
    const idleNames = readdirSync(join(idle.gw.dataDir, "volumes"));
    expect(idleNames.length).toBeGreaterThanOrEqual(1);
    for (const n of [...names, ...idleNames]) {
      if (n === ".lobu-pool") continue; // the virtual pools' call journals (docs/sandboxing.md)
      expect(n).toMatch(/^sb_[a-z0-9]+(\.img|\.sandbox\.json)?$/);
    }
  });
});
