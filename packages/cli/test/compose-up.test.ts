import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentEvent } from "@lobu/core";
import {
  collectEvents,
  dockerAvailable,
  LOBU_BIN,
  type MockLlm,
  REPO_ROOT,
  replyText,
  startMockLlm,
} from "@lobu/testkit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

/**
 * `docker compose up` of the Compose file `lobu deploy render` makes from
 * deploy/lobu.toml, for real: the gateway image built from this checkout, Redis,
 * the mock provider on the host. A turn runs in a process sandbox inside the
 * gateway container; the container is recreated and the conversation, its
 * sandbox's files and the agent's memory of it survive (Redis + the data
 * volume). No registry is reachable, so the base images come from
 * deploy/local-node-image.sh (a debootstrap root filesystem, kept between runs)
 * and Redis is Debian's (deploy/redis.Dockerfile) instead of redis:7.4-alpine.
 */

const engine = process.platform === "linux" ? dockerAvailable() : { ok: false, why: "not Linux" };
if (!engine.ok) console.warn(`compose suite skipped: ${engine.why} (start dockerd)`);

const NODE_IMAGE = "lobu-local/node:24-bookworm";
const REDIS_IMAGE = "lobu-local/redis:bookworm";
/** Not the user's lobu/gateway tag; kept between runs as the build cache. */
const GATEWAY_IMAGE = "lobu-test/gateway:compose";
const KEY = "sk-ant-compose-test-0123456789abcdef";
const MINUTE = 60_000;

interface Run {
  code: number | null;
  out: string;
}

/** A command's exit code and output (stdout and stderr together); never throws. */
function run(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("error", (err) => resolve({ code: null, out: `${out}${err.message}` }));
    child.on("close", (code) => resolve({ code, out }));
  });
}

async function must(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<string> {
  const res = await run(cmd, args, opts);
  if (res.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${res.code}:\n${res.out}`);
  return res.out;
}

function imageId(ref: string): string | undefined {
  const res = spawnSync("docker", ["image", "inspect", "--format", "{{.Id}}", ref], {
    encoding: "utf8",
  });
  return res.status === 0 ? res.stdout.trim() : undefined;
}

/** A port free on 127.0.0.1 now, for the gateway's published port. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The default bridge's address on the host (docker0's): containers on any bridge
 * network reach it. Read with `ip`: Node lists only interfaces with a carrier,
 * and docker0 has none while no container is on it.
 */
function hostAddress(): string {
  const bridge = spawnSync(
    "docker",
    [
      "network",
      "inspect",
      "bridge",
      "--format",
      '{{index .Options "com.docker.network.bridge.name"}}',
    ],
    { encoding: "utf8" },
  );
  if (bridge.status !== 0) throw new Error(`docker network inspect bridge: ${bridge.stderr}`);
  const name = bridge.stdout.trim() || "docker0";
  const ip = spawnSync("ip", ["-4", "-o", "addr", "show", "dev", name], { encoding: "utf8" });
  const address = /\binet (\d+\.\d+\.\d+\.\d+)\//.exec(ip.stdout)?.[1];
  if (!address) throw new Error(`the default bridge ${name} has no IPv4 address: ${ip.stderr}`);
  return address;
}

describe.skipIf(!engine.ok)("docker compose up (gateway + Redis)", () => {
  const dir = mkdtempSync(join(tmpdir(), "lobu-compose-"));
  const project = `lobu-compose-test-${randomBytes(4).toString("hex")}`;
  const token = randomBytes(24).toString("hex");
  const compose = (...args: string[]) =>
    must("docker", ["compose", "-p", project, "-f", join(dir, "compose.yaml"), ...args], {
      cwd: dir,
    });
  let llm: MockLlm;
  let url = "";
  let started = false;
  /** Show the gateway's log when something went wrong (or LOBU_COMPOSE_LOGS is set). */
  let showLogs = !!process.env.LOBU_COMPOSE_LOGS;
  afterEach(({ task }) => {
    if (task.result?.state === "fail") showLogs = true;
  });

  async function api(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${url}/api/v1${path}`, {
      ...init,
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        ...init.headers,
      },
    });
  }

  async function chat(text: string): Promise<AgentEvent[]> {
    const res = await api("/agents/default/messages", {
      method: "POST",
      headers: { accept: "text/event-stream" },
      body: JSON.stringify({ user: "alice", channel: "dev", text }),
    });
    expect(res.status).toBe(200);
    return collectEvents(res);
  }

  /** The model answers `text` by running `command` with bash, then says "ok". */
  function scriptBash(text: string, command: string): void {
    llm.when(
      (r) => r.lastUserText === text,
      { toolCalls: [{ name: "bash", input: { command } }] },
      { text: "ok" },
    );
  }

  const toolOutput = (text: string): string =>
    llm.requests
      .filter((r) => r.lastUserText === text)
      .flatMap((r) => r.toolResults.map((t) => t.content))
      .join("\n");

  /** `up -d --wait`: returns once every service's health check passes. */
  async function upAndWait(...extra: string[]): Promise<void> {
    const t0 = Date.now();
    await compose("up", "-d", "--wait", ...extra);
    console.log(`compose up ${extra.join(" ")}: healthy after ${Date.now() - t0} ms`);
  }

  beforeAll(async () => {
    const plugin = spawnSync("docker", ["compose", "version"], { encoding: "utf8" });
    if (plugin.status !== 0)
      throw new Error(`no \`docker compose\` (run scripts/setup.sh): ${plugin.stderr}`);

    let t0 = Date.now();
    await must("bash", [join(REPO_ROOT, "deploy/local-node-image.sh"), "--redis", NODE_IMAGE]);
    console.log(`base images (node, redis): ${Date.now() - t0} ms`);

    // What a user does: deploy/lobu.toml beside the rendered compose.yaml and a .env.
    copyFileSync(join(REPO_ROOT, "deploy/lobu.toml"), join(dir, "lobu.toml"));
    const rendered = await run(process.execPath, [
      LOBU_BIN,
      "deploy",
      "render",
      "--target",
      "compose",
      "-c",
      join(dir, "lobu.toml"),
      "--build-context",
      REPO_ROOT,
      "--image",
      GATEWAY_IMAGE,
      "--redis-image",
      REDIS_IMAGE,
      "-o",
      join(dir, "compose.yaml"),
    ]);
    expect(rendered.code, rendered.out).toBe(0);

    llm = await startMockLlm({ host: hostAddress(), apiKey: KEY });
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    writeFileSync(
      join(dir, ".env"),
      [
        `LOBU_MASTER_KEY=${randomBytes(32).toString("base64")}`,
        `LOBU_ADMIN_TOKEN=${token}`,
        `ANTHROPIC_API_KEY=${KEY}`,
        `ANTHROPIC_BASE_URL=${llm.url}`,
        `LOBU_HOST_PORT=127.0.0.1:${port}`,
        "",
      ].join("\n"),
      { mode: 0o600 },
    );

    t0 = Date.now();
    const before = imageId(GATEWAY_IMAGE);
    await compose("build", "--build-arg", `NODE_IMAGE=${NODE_IMAGE}`);
    const after = imageId(GATEWAY_IMAGE);
    // The image this build replaced would stay behind untagged: drop it.
    if (before && before !== after) spawnSync("docker", ["rmi", before], { stdio: "ignore" });
    console.log(`gateway image build: ${Date.now() - t0} ms`);

    started = true;
    showLogs = true;
    await upAndWait();
    showLogs = !!process.env.LOBU_COMPOSE_LOGS;
  }, 45 * MINUTE);

  afterAll(async () => {
    if (started) {
      const base = ["compose", "-p", project, "-f", join(dir, "compose.yaml")];
      if (showLogs) console.log((await run("docker", [...base, "logs", "--no-color"])).out);
      const down = await run("docker", [...base, "down", "-v", "--remove-orphans"], {
        cwd: dir,
      });
      if (down.code !== 0) console.warn(`compose down failed: ${down.out}`);
    }
    await llm?.close();
    rmSync(dir, { recursive: true, force: true });
  }, 5 * MINUTE);

  it(
    "answers through the REST API from a process sandbox inside the gateway container",
    async () => {
      const info = (await (await api("/info")).json()) as { store: string; sandboxDriver: string };
      expect(info).toMatchObject({ store: "redis", sandboxDriver: "process" });
      scriptBash("take a note", "echo remembered > note.txt && id -u && cat /proc/self/uid_map");
      const events = await chat("take a note");
      expect(replyText(events), JSON.stringify(events)).toBe("ok");
      const out = toolOutput("take a note");
      // The agent's own uid in its own user namespace: bubblewrap ran in the container.
      expect(out).toMatch(/^\d+$/m);
      expect(out).not.toMatch(/^0$/m);
    },
    5 * MINUTE,
  );

  it(
    "keeps the conversation, its files and the agent's memory when the container is recreated",
    async () => {
      const listed = async () =>
        (
          (await (await api("/agents/default/conversations?user=alice")).json()) as {
            conversations: { id: string }[];
          }
        ).conversations;
      const [conversation] = await listed();
      expect(conversation).toBeDefined();

      // A new container from the image: only Redis and the lobu-data volume carry state.
      const oldId = (await compose("ps", "-q", "gateway")).trim();
      await upAndWait("--force-recreate", "--no-deps", "gateway");
      expect((await compose("ps", "-q", "gateway")).trim()).not.toBe(oldId);

      expect((await listed()).map((c) => c.id)).toEqual([conversation!.id]);
      const history = (await (await api(`/conversations/${conversation!.id}/messages`)).json()) as {
        messages: unknown[];
      };
      expect(JSON.stringify(history.messages)).toContain("take a note");

      scriptBash("read the note", "cat note.txt");
      expect(replyText(await chat("read the note"))).toBe("ok");
      expect(toolOutput("read the note")).toContain("remembered");
      // The model was sent the whole conversation, the turn before the restart included.
      const asked = llm.requests.find((r) => r.lastUserText === "read the note")!;
      expect(JSON.stringify(asked.body.messages)).toContain("take a note");
    },
    10 * MINUTE,
  );
});
