import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { GatewayProcess, MockLlm } from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  attack,
  freshSecret,
  leaksOnHost,
  PY_MEMORY_CHUNKS,
  sandboxOf,
  sections,
  startTarget,
  type Target,
} from "./helpers.ts";

/**
 * Where could a hostile agent find a real credential inside its sandbox? It
 * looks everywhere it can read: its environment, every process's environment,
 * command line and memory, and every file. It must find placeholders only.
 *
 * The real values are random per run (they exist in no file of the repo, which
 * sandboxes can read), and the agent searches for their prefixes, which it builds
 * at run time so the search itself never contains them.
 */

// A tag for this run: the prefixes searched for exist nowhere in the repo.
const TAG = randomBytes(4).toString("hex");
const PROVIDER_KEY = freshSecret(`sk-ant-${TAG}x`);
const GITHUB = freshSecret(`ghp_${TAG}x`);
// How the agent spells the prefixes without ever writing them whole (its commands are
// in its own memory, its transcript and /proc).
const PREFIXES = `p1=sk-ant-; p1="\${p1}${TAG}x"; p2=ghp_; p2="\${p2}${TAG}x"; [ -n "$p1" ] && [ -n "$p2" ]`;
let target: Target;
let llm: MockLlm;
let gw: GatewayProcess;

beforeAll(async () => {
  target = await startTarget({
    providerKey: PROVIDER_KEY,
    toml: `
[network]
allow = ["api.github.com"]
[agents.default.secrets]
GITHUB_TOKEN = { secret = "github", hosts = ["api.github.com"] }
`,
    agentSecrets: { github: GITHUB },
  });
  ({ gw, llm } = target);
  // A first turn, so the worker holds its provider placeholder and the shell its env.
  await attack(gw, llm, "echo warm-up > warm.txt", { user: "snoop" });
});

afterAll(() => target?.stop());

describe("what a hostile agent can read in its sandbox", () => {
  it("its environment holds placeholders, never the real values", async () => {
    const { output } = await attack(
      gw,
      llm,
      'echo "### env"; env; echo "### printenv"; printenv GITHUB_TOKEN',
      {
        user: "snoop",
      },
    );
    const got = sections(output);
    expect(got.get("printenv")!.trim()).toMatch(/^lobu_secret_[0-9a-f-]{36}$/);
    expect(got.get("env")).toContain(`GITHUB_TOKEN=${got.get("printenv")!.trim()}`);
    expect(output).not.toContain(GITHUB);
    expect(output).not.toContain(PROVIDER_KEY);
    expect(output).not.toContain(`${TAG}x`);
  });

  it("no process's environment or command line (every pid the sandbox can see) holds them", async () => {
    // Whole command lines (never cut to a width): in a checkout under a long path,
    // the worker's entry point comes late in its command line.
    const cmd = `${PREFIXES}
echo "### pids"; for p in /proc/[0-9]*; do echo "\${p#/proc/} $(tr '\\0' ' ' < $p/cmdline 2>/dev/null)"; done
echo "### environ-placeholders"; cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c '^GITHUB_TOKEN=lobu_secret_'
echo "### hits"; for p in /proc/[0-9]*; do for f in environ cmdline; do grep -l -a -F -e "$p1" -e "$p2" $p/$f 2>/dev/null; done; done; echo end`;
    const { output } = await attack(gw, llm, cmd, { user: "snoop" });
    const got = sections(output);
    // The sandbox has its own pid namespace: its init, the worker, and this shell's family.
    const pids = got.get("pids")!.trim().split("\n");
    expect(pids.some((l) => l.includes("packages/worker/src/main.ts"))).toBe(true);
    expect(pids.some((l) => / lobu\.js run /.test(l))).toBe(false);
    expect(Number(got.get("environ-placeholders")!.trim())).toBeGreaterThan(0);
    expect(got.get("hits")!.trim()).toBe("end");
    expect(output).not.toContain(GITHUB);
    expect(output).not.toContain(PROVIDER_KEY);
  });

  it("no process's memory holds them (the worker's heap has placeholders only)", async () => {
    // Read every readable mapping of every other process in the sandbox.
    const cmd = `python3 - <<'PY'
import os, re
${PY_MEMORY_CHUNKS}
prefixes = [b"sk-ant-" + b"${TAG}x", b"ghp_" + b"${TAG}x"]
placeholder = re.compile(rb"lobu_secret_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
me = os.getpid()
for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
    if pid == me:
        continue
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
        maps = open(f"/proc/{pid}/maps").read().splitlines()
        mem = open(f"/proc/{pid}/mem", "rb", 0)
    except OSError as e:
        print(f"{pid} unreadable {e.strerror}")
        continue
    scanned = hits = placeholders = 0
    for chunk in memory_chunks(maps, mem, lambda parts: len(parts) > 5 and parts[5].startswith("[v")):
        scanned += len(chunk)
        hits += sum(chunk.count(p) for p in prefixes)
        placeholders += len(placeholder.findall(chunk))
    print(f"{pid} scanned={scanned} hits={hits} placeholders={placeholders} {cmd}")
PY`;
    const { output } = await attack(gw, llm, cmd, { user: "snoop" });
    const rows = output
      .trim()
      .split("\n")
      .filter((l) => /^\d+ /.test(l));
    // pid 1 is bwrap's init (its command line names node too, further on); the worker
    // is the process whose program is node, running the worker's entry point.
    const worker = rows.find((l) =>
      /placeholders=\d+ \S*\/node .*packages\/worker\/src\/main\.ts/.test(l),
    );
    expect(worker, output).toBeDefined();
    // The scan worked: the worker's memory was read and holds its placeholders.
    expect(worker).toMatch(/scanned=[1-9]\d{6,}/);
    expect(Number(/placeholders=(\d+)/.exec(worker!)![1])).toBeGreaterThan(0);
    for (const row of rows) expect(row).toMatch(/hits=0 |unreadable/);
  });

  it("no file it can read holds them: not its volume, /tmp, /etc, /run, the runtime, anything", async () => {
    const cmd = `${PREFIXES}
printf '%s\\n' "\${p1}canary" > /tmp/canary.txt
echo "### hits"; grep -rIlsF -D skip -e "$p1" -e "$p2" / --exclude-dir=proc --exclude-dir=sys --exclude-dir=usr --exclude-dir=node_modules; echo "rc=$?"
echo "### placeholders"; grep -rIlsF lobu_secret_ /workspace | head -5
echo "### datadir"; ls ${gw.dataDir} 2>&1; cat ${join(gw.dataDir, "master.key")} 2>&1; ls /root 2>&1 | head -3`;
    const { output } = await attack(gw, llm, cmd, { user: "snoop" });
    const got = sections(output);
    // Only the canary the agent planted itself (proving the search works) is found.
    expect(got.get("hits")!.trim()).toMatch(/^\/tmp\/canary\.txt\nrc=[02]$/);
    // Placeholders are there (the transcript), so the search did look into the volume.
    expect(got.get("placeholders")).toMatch(/\/workspace\/\.lobu\//);
    expect(got.get("datadir")).toMatch(/No such file or directory/);
    expect(got.get("datadir")).not.toMatch(/master\.key\s|lobu\.db/);
    expect(output).not.toContain(GITHUB);
    expect(output).not.toContain(PROVIDER_KEY);

    // And from the host's side: nothing in the volume, processes' env or command lines.
    const sandbox = await sandboxOf(gw, "snoop");
    expect(leaksOnHost(gw, [GITHUB, PROVIDER_KEY], join(gw.dataDir, "volumes", sandbox))).toEqual(
      [],
    );
  });
});
