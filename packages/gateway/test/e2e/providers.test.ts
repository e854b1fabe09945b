import { spawn } from "node:child_process";
import {
  collectEvents,
  type GatewayProcess,
  LOBU_BIN,
  type MockLlm,
  replyText,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** Provider selection and BYO keys through a real gateway and sandboxed workers. */

const INSTALL_KEY = "sk-openai-installation-key-000000";
const AGENT_KEY = "sk-openai-agent-key-111111";
let llm: MockLlm;
let gw: GatewayProcess;

beforeAll(async () => {
  llm = await startMockLlm();
  gw = await startGatewayProcess({
    toml: `[agents.default]\nname = "Assistant"\n[agents.research]\nname = "Research"\nmodel = "research-model"\n`,
    env: {
      OPENAI_API_KEY: INSTALL_KEY,
      OPENAI_BASE_URL: llm.openaiUrl,
      ANTHROPIC_API_KEY: undefined,
    },
  });
});

afterAll(async () => {
  await gw?.stop();
  await llm?.close();
});

function send(agent: string, user: string, text: string) {
  return gw.api(`/api/v1/agents/${agent}/messages`, {
    method: "POST",
    headers: { accept: "text/event-stream" },
    body: JSON.stringify({ user, text }),
  });
}

describe("providers", () => {
  it("uses the only configured provider by default (OpenAI-compatible, streaming)", async () => {
    const events = await collectEvents(await send("default", "dora", "hi openai"));
    expect(replyText(events)).toBe("echo: hi openai");
    const req = llm.requests.at(-1)!;
    expect(req.api).toBe("openai");
    expect(req.apiKey).toBe(INSTALL_KEY);
    expect(req.model).toBe("gpt-4.1-mini");
  });

  it("uses a per-agent key set through the API, for that agent only", async () => {
    const put = await gw.api("/api/v1/agents/research/secrets/provider.openai", {
      method: "PUT",
      body: JSON.stringify({ value: AGENT_KEY }),
    });
    expect(put.status).toBe(200);
    const meta = (await put.json()) as { hint: string; value?: string };
    expect(meta.value).toBeUndefined();
    expect(meta.hint).not.toContain("111111");
    await collectEvents(await send("research", "dora", "research this"));
    const req = llm.requests.at(-1)!;
    expect(req.apiKey).toBe(AGENT_KEY);
    expect(req.model).toBe("research-model");
    await collectEvents(await send("default", "dora", "and you?"));
    expect(llm.requests.at(-1)!.apiKey).toBe(INSTALL_KEY);
  });

  it("reports provider errors to the user instead of hanging", async () => {
    llm.when((r) => r.lastUserText === "trigger 401", {
      error: { status: 401, message: "bad key upstream" },
    });
    const events = await collectEvents(await send("default", "dora", "trigger 401"));
    const last = events.at(-1)!;
    expect(last.type).toBe("error");
    expect(JSON.stringify(last)).toMatch(/401|bad key/);
  });

  it("chats interactively over stdin with `lobu chat`", async () => {
    const child = spawn(
      process.execPath,
      [LOBU_BIN, "chat", "--gateway", gw.url, "--token", gw.token, "--user", "erin"],
      {
        stdio: ["pipe", "pipe", "pipe"],
      },
    );
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    const replied = (text: string) =>
      new Promise<void>((resolve) => {
        const check = () => (out.includes(text) ? resolve() : setTimeout(check, 50));
        check();
      });
    // Both lines at once, before the first reply: typed-ahead input waits its turn.
    child.stdin.write("first line\nsecond line\n");
    await replied("echo: first line");
    await replied("echo: second line");
    child.stdin.end();
    const code = await new Promise((r) => child.on("exit", r));
    expect(code).toBe(0);
  });
});
