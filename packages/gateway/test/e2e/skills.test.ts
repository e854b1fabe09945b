import { mkdtempSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  collectEvents,
  type GatewayProcess,
  type MockLlm,
  removeDataDir,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiSettingsLink, eventReader, openSettings } from "../settings/helpers.ts";
import { writeSkill } from "../skills/fixtures.ts";
import { REAL_KEY, replyOf, scriptBash, toolOutputs } from "./sandboxes-kit.ts";

/**
 * Skills end to end: a project's skill folders (skills/<name>/SKILL.md next to
 * lobu.toml) reach the agent of a real `lobu run` — its instructions and where
 * its files are in the system prompt, its files read-only in the sandbox (a
 * real process sandbox and a virtual one, through the agent's own tools), its
 * domains in the egress proxy once installed — and a skill granted in the
 * middle of a turn is there for the rest of that turn.
 */

const NOTES = "NOTES-FROM-THE-FIELD-NOTES-SKILL";

/** A project folder (also the data dir) with its skills, and a gateway started in it. */
async function startProject(opts: {
  driver: "process" | "virtual";
  toml: string;
  llm: MockLlm;
}): Promise<GatewayProcess> {
  const dir = mkdtempSync(join(tmpdir(), "lobu-e2e-skills-"));
  writeSkill(join(dir, "skills", "field-notes"), "field-notes", {
    description: "Notes from the field. Use when asked about the field.",
    body: "Read notes.txt in this skill's folder before answering about the field.",
    files: {
      "notes.txt": `${NOTES}\n`,
      "scripts/hello.sh+x": "#!/bin/sh\necho hello-from-the-skill-script\n",
    },
    metadata: { "lobu.secrets": "FIELD_TOKEN" },
  });
  writeSkill(join(dir, "skills", "late"), "late", { files: { "late.txt": "LATE-SKILL-FILE\n" } });
  writeSkill(join(dir, "skills", "partner"), "partner", {
    description: "The partner's internal API.",
    metadata: { "lobu.domains": "upstream.localhost" },
  });
  try {
    return await startGatewayProcess({
      dataDir: dir,
      toml: [
        "[sandbox]",
        `driver = "${opts.driver}"`,
        'idle_timeout = "10m"',
        ...(opts.driver === "virtual" ? ["pool_size = 1"] : []),
        opts.toml,
      ].join("\n"),
      env: {
        ANTHROPIC_API_KEY: REAL_KEY,
        ANTHROPIC_BASE_URL: opts.llm.url,
        OPENAI_API_KEY: undefined,
      },
    });
  } catch (err) {
    removeDataDir(dir);
    throw err;
  }
}

function chat(gw: GatewayProcess, user: string, text: string) {
  return gw
    .api("/api/v1/agents/default/messages", {
      method: "POST",
      headers: { accept: "text/event-stream" },
      body: JSON.stringify({ user, channel: "dev", text }),
    })
    .then(collectEvents);
}

/** The system prompt the model got for `text`. */
function systemFor(llm: MockLlm, text: string): string {
  return JSON.stringify(llm.requests.filter((r) => r.lastUserText === text).at(-1)?.body.system);
}

describe("skills in a process sandbox", () => {
  let llm: MockLlm;
  let gw: GatewayProcess;
  let upstream: Server;
  let upstreamUrl: string;

  beforeAll(async () => {
    upstream = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("hello-from-upstream\n");
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    // *.localhost is loopback (RFC 6761): reachable only because the operator opts in below.
    upstreamUrl = `http://upstream.localhost:${(upstream.address() as AddressInfo).port}/`;
    llm = await startMockLlm({ apiKey: REAL_KEY });
    gw = await startProject({
      driver: "process",
      llm,
      toml: [
        "[network]",
        'allow_private_ranges = ["127.0.0.1/32", "::1/128"]',
        "[agents.default]",
        'skills = ["field-notes"]',
      ].join("\n"),
    });
  });
  afterAll(async () => {
    await gw?.stop();
    removeDataDir(gw?.dataDir ?? "/nonexistent");
    await llm?.close();
    await new Promise((r) => upstream?.close(r));
  });

  it("lists the skill in the system prompt and shows its files read-only at /skills", async () => {
    scriptBash(llm, "what do the notes say", [
      "cat /skills/field-notes/notes.txt",
      "/skills/field-notes/scripts/hello.sh",
      "touch /skills/field-notes/mine 2>&1; rm -f /skills/field-notes/notes.txt 2>&1; echo rc=$?",
      "ls -A /skills",
      "ls -A ~",
    ]);
    expect(replyOf(await chat(gw, "alice", "what do the notes say"))).toBe("ok");
    const [cat, script, write, skills, home] = toolOutputs(llm, "what do the notes say");
    expect(cat).toContain(NOTES);
    expect(script).toContain("hello-from-the-skill-script");
    expect(write).toContain("Read-only file system");
    expect(write).not.toContain("rc=0");
    // Only the installed skill (not the project's others), and nothing of it in the workspace.
    expect(skills?.trim()).toBe("field-notes");
    expect(home).not.toContain("skill");
    const system = systemFor(llm, "what do the notes say");
    expect(system).toContain(
      "## field-notes — Notes from the field. Use when asked about the field.",
    );
    expect(system).toContain("Files: /skills/field-notes/");
    expect(system).toContain("Read notes.txt in this skill's folder");
    expect(system).toContain("Secrets it uses (environment variables): FIELD_TOKEN");
  });

  it("a skill granted mid-turn has its files in the sandbox for the rest of that turn", async () => {
    const text = "use the late skill";
    llm.when(
      (r) => r.lastUserText === text,
      {
        toolCalls: [
          {
            name: "request_capability",
            input: { kind: "skill", value: "late", reason: "Its file has what I need." },
          },
        ],
      },
      { toolCalls: [{ name: "bash", input: { command: "cat /skills/late/late.txt" } }] },
      { text: "done" },
    );
    const res = await gw.api("/api/v1/agents/default/messages", {
      method: "POST",
      headers: { accept: "text/event-stream" },
      body: JSON.stringify({ user: "carol", channel: "dev", text }),
    });
    const events = eventReader(res);
    const request = await events.until("capability_request");
    const me = await openSettings(gw, request.url as string);
    const answered = await me.call("POST", `/requests/${request.requestId}/answer`, {
      choice: "granted",
    });
    expect(answered.status).toBe(200);
    expect((await events.rest()).at(-1)).toMatchObject({ type: "done", text: "done" });
    const [granted, cat] = toolOutputs(llm, text);
    expect(granted).toContain('Skill "late" installed.');
    expect(granted).toContain('in the folder "late" of your skills directory');
    expect(granted).toContain("Your skills directory is /skills (read-only).");
    expect(cat).toContain("LATE-SKILL-FILE");
    // Carol's grant is hers: Alice's sandbox still has only the agent's skill.
    scriptBash(llm, "which skills now", ["ls -A /skills"]);
    await chat(gw, "alice", "which skills now");
    expect(toolOutputs(llm, "which skills now")[0]?.trim()).toBe("field-notes");
  });

  it("installing a skill from the settings page opens its domains to the agent (real proxy)", async () => {
    const curl = `curl -sS -m 10 ${upstreamUrl}; echo " exit=$?"`;
    scriptBash(llm, "call the partner", [curl]);
    scriptBash(llm, "call the partner again", [curl]);
    await chat(gw, "bob", "call the partner");
    const before = toolOutputs(llm, "call the partner")[0]!;
    expect(before).not.toContain("hello-from-upstream");
    expect(before).toContain("upstream.localhost is not in the agent's network allow list");

    const me = await openSettings(gw, await apiSettingsLink(gw, "bob"));
    const state = (await (await me.call("GET", "/state")).json()) as {
      skills: { catalog: { name: string; domains: string[] }[] };
    };
    // The page shows what the skill brings before it is installed.
    expect(state.skills.catalog.find((s) => s.name === "partner")?.domains).toEqual([
      "upstream.localhost",
    ]);
    expect((await me.call("POST", "/skills", { name: "partner" })).status).toBe(200);

    await chat(gw, "bob", "call the partner again");
    expect(toolOutputs(llm, "call the partner again")[0]).toContain("hello-from-upstream");
    // Alice did not install it: her sandbox still cannot reach it.
    scriptBash(llm, "alice calls the partner", [curl]);
    await chat(gw, "alice", "alice calls the partner");
    expect(toolOutputs(llm, "alice calls the partner")[0]).toContain(
      "upstream.localhost is not in the agent's network allow list",
    );
  });
});

describe("skills in a virtual sandbox", () => {
  let llm: MockLlm;
  let gw: GatewayProcess;

  beforeAll(async () => {
    llm = await startMockLlm({ apiKey: REAL_KEY });
    gw = await startProject({
      driver: "virtual",
      llm,
      toml: '[agents.default]\nskills = ["field-notes"]\n',
    });
  });
  afterAll(async () => {
    await gw?.stop();
    removeDataDir(gw?.dataDir ?? "/nonexistent");
    await llm?.close();
  });

  it("shows the skill's files read-only at /skills through the agent's own tools", async () => {
    const text = "read the field notes";
    llm.when(
      (r) => r.lastUserText === text,
      { toolCalls: [{ name: "read", input: { path: "/skills/field-notes/notes.txt" } }] },
      { toolCalls: [{ name: "ls", input: { path: "/skills" } }] },
      { toolCalls: [{ name: "bash", input: { command: "cat /skills/field-notes/notes.txt" } }] },
      {
        toolCalls: [
          { name: "bash", input: { command: "echo x > /skills/field-notes/mine; echo rc=$?" } },
        ],
      },
      {
        toolCalls: [
          { name: "write", input: { path: "/skills/field-notes/notes.txt", content: "x" } },
        ],
      },
      { toolCalls: [{ name: "grep", input: { pattern: "NOTES-FROM", path: "/skills" } }] },
      { text: "ok" },
    );
    expect(replyOf(await chat(gw, "dora", text))).toBe("ok");
    const [read, ls, cat, redirect, write, grep] = toolOutputs(llm, text);
    expect(read).toContain(NOTES);
    expect(ls).toContain("field-notes");
    expect(ls).not.toContain("late");
    expect(cat).toContain(NOTES);
    expect(redirect).toContain(
      "read-only file system, '/skills/field-notes/mine': skill files are read-only",
    );
    expect(redirect).not.toContain("rc=0");
    expect(write).toContain("read-only file system, '/skills/field-notes/notes.txt'");
    expect(grep).toContain("field-notes/notes.txt");
    expect(systemFor(llm, text)).toContain("Files: /skills/field-notes/");
  });
});
