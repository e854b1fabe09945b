import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  REAL_KEY,
  replyOf,
  scriptBash,
  startWorld,
  toolOutputs,
  until,
  type World,
} from "./sandboxes-kit.ts";

/**
 * What a hostile agent can do to the machine, through the REAL worker: every
 * attack is a bash command the (scripted) model asks pi to run. The attacker
 * fixture suites (test/sandbox/process-*.test.ts) cover the same classes below
 * the worker; here they go through the whole product.
 */

// Made up at run time, so no file on this machine (caches of this test included) holds it.
const SECRET = `victim-${randomUUID()}`;

/** The secret as a shell word written in two pieces, so the command (and the transcript holding it) never contains it whole. */
const split = (text: string) => `"${text.slice(0, 10)}""${text.slice(10)}"`;

function gatewayReachable(w: World): Promise<boolean> {
  return w.gw.api("/healthz").then(
    (r) => r.ok,
    () => false,
  );
}

describe("process sandboxes hold a hostile agent (real worker)", () => {
  let w: World;
  let victimId: string;
  let victimPid: number;

  beforeAll(async () => {
    w = await startWorld({
      driver: "process",
      toml: `idle_timeout = "10m"\nmemory_mb = 384\npids = 96\ndisk_mb = 32\n`,
    });
    scriptBash(w.llm, "store my secret", [`echo ${SECRET} > secret.txt`]);
    expect(replyOf(await w.chat("victim", "store my secret"))).toBe("ok");
    const victim = await w.sandboxOf("victim");
    victimId = victim.id;
    victimPid = victim.pid!;
  });
  afterAll(() => w?.close());

  it("cannot read another sandbox's volume or the gateway's files", async () => {
    const data = w.gw.dataDir;
    scriptBash(w.llm, "snoop files", [
      [
        `cat ${data}/volumes/${victimId}/secret.txt`,
        `ls ${data}`,
        `head -c 200 ${data}/master.key ${data}/admin-token ${data}/lobu.db`,
        `cat /proc/${w.gw.child.pid}/environ`,
        "cat ../*/secret.txt",
        "ls -a /; ls /proc | grep -c '^[0-9]'",
        `grep -rs -D skip ${split(SECRET)} /workspace /tmp /var /home /root /etc 2>/dev/null | head -3`,
        "id",
      ].join("; "),
    ]);
    expect(replyOf(await w.chat("mallory", "snoop files"))).toBe("ok");
    const out = toolOutputs(w.llm, "snoop files")[0]!;
    expect(out).not.toContain(SECRET);
    expect(out).not.toContain(REAL_KEY);
    expect(out).not.toContain(w.gw.token);
    expect(out).not.toContain(readFileSync(join(data, "master.key"), "utf8").trim().slice(0, 16));
    expect(out).toMatch(/No such file or directory/);
    expect(out).toMatch(/uid=\d+\(agent\)/);
  });

  it("reaches the network only through the egress proxy", async () => {
    const port = w.gw.port;
    scriptBash(w.llm, "phone home", [
      [
        `curl -s --noproxy '*' --max-time 3 http://127.0.0.1:${port}/healthz; echo direct-gateway=$?`,
        `curl -s --noproxy '*' --max-time 3 http://1.1.1.1/; echo direct-internet=$?`,
        `node -e "require('net').connect(53,'8.8.8.8').on('connect',()=>console.log('CONNECTED')).on('error',e=>console.log('tcp',e.code))"`,
        `curl -s --max-time 5 http://127.0.0.1:${port}/healthz; echo`,
        "curl -s --max-time 5 http://example.com/; echo",
      ].join("; "),
    ]);
    expect(replyOf(await w.chat("mallory", "phone home"))).toBe("ok");
    const out = toolOutputs(w.llm, "phone home")[0]!;
    expect(out).toMatch(/direct-gateway=[1-9]/);
    expect(out).toMatch(/direct-internet=[1-9]/);
    expect(out).not.toContain("CONNECTED");
    expect(out).not.toContain('"ok":true');
    // Through the proxy: refused with an explanation, and audited to this sandbox.
    expect(out).toMatch(/Lobu egress proxy refused/);
    const mallory = await w.sandboxOf("mallory");
    const denied = await w.audit("egress.denied", mallory.id);
    expect(denied.map((d) => d.details?.host)).toEqual(
      expect.arrayContaining(["127.0.0.1", "example.com"]),
    );
  });

  it("contains a memory hog: the gateway and other sandboxes carry on, the user gets an answer", async () => {
    const hog = {
      toolCalls: [
        {
          name: "bash",
          input: {
            command: `node -e "const a=[];for(;;)a.push(Buffer.alloc(1<<20,1))"; echo exit=$?`,
          },
        },
      ],
    };
    w.llm.when((r) => r.lastUserText === "eat memory", hog, { text: "done eating" });
    const events = await w.chat("hog", "eat memory");
    const last = events.at(-1)!;
    // Either the hog alone was killed (the tool says so), or the whole worker was
    // and the message was retried: both end in a clear answer.
    if (last.type === "done") expect(last.text).toBe("done eating");
    else expect(last).toMatchObject({ type: "error", message: expect.stringMatching(/memory/) });
    const outputs = toolOutputs(w.llm, "eat memory");
    if (outputs.length > 0) expect(outputs[0]).toMatch(/exit=(137|134|1)\b|Killed|heap/);
    expect(await gatewayReachable(w)).toBe(true);
    expect(replyOf(await w.chat("victim", "still there?"))).toBe("echo: still there?");
  });

  it("contains a process flood within its pids limit", async () => {
    scriptBash(w.llm, "spawn a crowd", [
      `node -e "let ok=0,fail=0;for(let i=0;i<300;i++){const c=require('child_process').spawn('sleep',['60']);c.on('spawn',()=>ok++);c.on('error',()=>fail++)};setTimeout(()=>{console.log('ok',ok,'fail',fail);process.exit(0)},1500)"; ps -e --no-headers | wc -l`,
    ]);
    expect(replyOf(await w.chat("crowd", "spawn a crowd"))).toBe("ok");
    const out = toolOutputs(w.llm, "spawn a crowd")[0]!;
    const [, ok, fail] = /ok (\d+) fail (\d+)/.exec(out)!.map(Number);
    expect(fail).toBeGreaterThan(0);
    expect(ok!).toBeLessThan(96);
    const crowd = await w.sandboxOf("crowd");
    expect(crowd.usage?.pids ?? 0).toBeLessThanOrEqual(96);
    expect(replyOf(await w.chat("victim", "and now?"))).toBe("echo: and now?");
  });

  it("cannot signal anything outside its sandbox; killing everything it can only ends its own worker", async () => {
    const killAll = {
      toolCalls: [
        {
          name: "bash",
          input: {
            command: `kill -9 ${w.gw.child.pid} ${victimPid}; echo signalled=$?; kill -9 -1`,
          },
        },
      ],
    };
    w.llm.when((r) => r.lastUserText === "kill everything", killAll, { text: "back again" });
    const events = await w.chat("killer", "kill everything");
    expect(replyOf(events)).toBe("back again");
    expect(await gatewayReachable(w)).toBe(true);
    process.kill(victimPid, 0); // still alive, or this throws
    const victim = await w.sandboxOf("victim");
    expect(victim.pid).toBe(victimPid);
    expect((await w.sandboxOf("killer")).lastExit?.reason).toBe("crashed");
  });

  it("cannot write past its disk quota, and the host's disk is untouched", async () => {
    scriptBash(w.llm, "fill up", [
      "dd if=/dev/zero of=big bs=1M count=100 2>&1 | grep -m1 error; rm -f big; echo cleaned",
    ]);
    expect(replyOf(await w.chat("filler", "fill up"))).toBe("ok");
    expect(toolOutputs(w.llm, "fill up")[0]).toMatch(/No space left on device|File too large/);
    const filler = await w.sandboxOf("filler");
    expect(filler.usage?.diskBytes ?? 0).toBeLessThan(32 * 1024 * 1024);
  });
});

describe("virtual sandboxes hold a hostile agent (real worker)", () => {
  let w: World;
  let victimId: string;

  beforeAll(async () => {
    w = await startWorld({
      driver: "virtual",
      toml: `idle_timeout = "10m"\npool_size = 1\ndisk_mb = 16\n`,
    });
    scriptBash(w.llm, "store my secret", [`echo ${SECRET} > secret.txt`]);
    expect(replyOf(await w.chat("victim", "store my secret"))).toBe("ok");
    victimId = (await w.sandboxOf("victim")).id;
  });
  afterAll(() => w?.close());

  it("cannot escape its volume by path, symlink or the pool's mounts", async () => {
    const data = w.gw.dataDir;
    scriptBash(w.llm, "escape", [
      [
        "cat ../../etc/passwd /etc/shadow",
        `cat ../${victimId}/secret.txt /volumes/${victimId}/secret.txt ${data}/volumes/${victimId}/secret.txt`,
        `ls ${data} /volumes /proc/1 2>&1 | head -5`,
        "ln -s / hostroot; ls hostroot/; cat hostroot/etc/hostname",
        "ln -s ../.. up; ls up/; cat up/*/secret.txt",
        "cat /proc/self/environ; echo; env | grep -c LOBU_",
        `grep -rs ${split(SECRET)} / 2>/dev/null | head -3; echo searched`,
      ].join("; "),
    ]);
    expect(replyOf(await w.chat("mallory", "escape"))).toBe("ok");
    const out = toolOutputs(w.llm, "escape")[0]!;
    expect(out).toContain("searched");
    expect(out).not.toContain(SECRET);
    expect(out).not.toContain(REAL_KEY);
    expect(out).not.toMatch(/^root:x:0:0/m);
    expect(out).not.toContain("LOBU_EGRESS_SOCKET");
  });

  it("reaches the network only through the egress proxy, as itself", async () => {
    const victim = victimId;
    scriptBash(w.llm, "phone home", [
      [
        `curl -s http://127.0.0.1:${w.gw.port}/healthz; echo`,
        `curl -s -H 'x-lobu-sandbox: ${victim}' -H 'Proxy-Authorization: Basic ${Buffer.from(`${victim}:`).toString("base64")}' https://example.com/; echo`,
        `curl -s http://localhost:${w.gw.port}/__lobu/llm/anthropic/v1/models; echo`,
      ].join("; "),
    ]);
    expect(replyOf(await w.chat("mallory", "phone home"))).toBe("ok");
    const out = toolOutputs(w.llm, "phone home")[0]!;
    expect(out).toMatch(/Lobu egress proxy refused the request to 127\.0\.0\.1/);
    expect(out).toMatch(/example\.com is not in the agent's network allow list/);
    expect(out).not.toContain('"ok":true');
    const mallory = await w.sandboxOf("mallory");
    const denied = await w.audit("egress.denied", mallory.id);
    expect(denied.map((d) => d.details?.host)).toEqual(
      expect.arrayContaining(["127.0.0.1", "example.com"]),
    );
    // The spoofed identity got nowhere: nothing about example.com was recorded against the victim.
    expect(
      (await w.audit("egress", victim)).filter((r) => r.details?.host === "example.com"),
    ).toEqual([]);
  });

  it("cannot write past its disk quota", async () => {
    scriptBash(w.llm, "fill up", [
      's=x; for i in $(seq 1 20); do s=$s$s; done; printf %s "$s" > f0; for i in $(seq 1 30); do cp f0 f$i || { echo "stopped at $i"; break; }; done',
    ]);
    expect(replyOf(await w.chat("filler", "fill up"))).toBe("ok");
    const out = toolOutputs(w.llm, "fill up")[0]!;
    expect(out).toMatch(/stopped at (1[0-6]|[1-9])\b/);
    expect(out).toMatch(/disk quota exceeded.*limited to 16 MB/);
    const filler = await w.sandboxOf("filler");
    expect(filler.usage?.diskBytes ?? 0).toBeLessThanOrEqual(17 * 1024 * 1024);
  });

  it("stops runaway loops and memory hoarding without hurting the pool", async () => {
    scriptBash(w.llm, "run away", [
      "while true; do :; done",
      's=x; while true; do s=$s$s; done; echo "survived: $s"',
    ]);
    expect(replyOf(await w.chat("hoarder", "run away"))).toBe("ok");
    const [loop, hoard] = toolOutputs(w.llm, "run away");
    expect(loop).toMatch(/too many commands|timed out/);
    expect(hoard).toMatch(/limit exceeded/);
    expect(hoard).not.toContain("survived");
    expect(replyOf(await w.chat("victim", "anyone home?"))).toBe("echo: anyone home?");
  });

  it("keeps serving the pool's other sandboxes while one agent is busy", async () => {
    w.llm.when(
      (r) => r.lastUserText === "take your time",
      { toolCalls: [{ name: "bash", input: { command: "sleep 10; echo woke", timeout: 60 } }] },
      { text: "rested" },
    );
    const busy = await w.post("sleeper", "take your time");
    await until(async () =>
      w.llm.requests.some((r) => r.lastUserText === "take your time") ? true : undefined,
    );
    expect(replyOf(await w.chat("victim", "still answering?"))).toBe("echo: still answering?");
    expect((await w.message(busy)).status).toBe("running");
    await until(async () => ((await w.message(busy)).status === "done" ? true : undefined));
    expect(toolOutputs(w.llm, "take your time")[0]).toBe("woke\n");
  });
});
