import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AgentEvent, createLogger, isLobuError, LobuConfig } from "@lobu/core";
import {
  type AdapterContext,
  type Gateway,
  PLATFORMS,
  type PlatformAdapter,
  type PlatformPlugin,
  type PlatformSetup,
  startGateway,
} from "@lobu/gateway";
import { type MockLlm, removeDataDir, startMockLlm } from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Origin } from "../../src/domain/origin.ts";

/**
 * A platform is a plugin: its folder and one entry in the registration list
 * (platforms/index.ts; here the `platforms` option of startGateway). This test
 * double is such a platform, registered next to the real ones: it gets its
 * section, its routes and its context, and renders the turn it started.
 */

interface Delivered {
  origin: Origin;
  events: AgentEvent[];
}

class EchoAdapter implements PlatformAdapter {
  readonly platform = "echo";
  readonly delivered: Delivered[] = [];
  readonly #waiting: ((d: Delivered) => void)[] = [];
  ctx: AdapterContext | undefined;

  async start(ctx: AdapterContext): Promise<void> {
    this.ctx = ctx;
    ctx.routes.post("/echo/webhook", async (c) => {
      const { user, text } = (await c.req.json()) as { user: string; text: string };
      const result = await ctx.submit({
        origin: { platform: "echo", channelId: "room", userId: user, isDirect: true },
        text,
        eventId: `${user}:${text}`,
      });
      return c.json({ messageId: result.messageId });
    });
  }

  async stop(): Promise<void> {}

  async deliver(
    origin: Origin,
    turn: { messageId: string; events: AsyncIterable<AgentEvent> },
  ): Promise<void> {
    const events: AgentEvent[] = [];
    for await (const event of turn.events) events.push(event);
    const delivered = { origin, events };
    this.delivered.push(delivered);
    for (const resolve of this.#waiting.splice(0)) resolve(delivered);
  }

  async notify(): Promise<void> {}

  nextDelivery(): Promise<Delivered> {
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
}

const seen: PlatformSetup[] = [];
let adapter: EchoAdapter | undefined;
const echo: PlatformPlugin = {
  id: "echo",
  create: (setup) => {
    seen.push(setup);
    if (!setup.section) return undefined;
    adapter = new EchoAdapter();
    return adapter;
  },
};

let llm: MockLlm;
let gw: Gateway;
let dataDir: string;

function start(platforms: Record<string, unknown>, plugins: readonly PlatformPlugin[]) {
  dataDir = mkdtempSync(join(tmpdir(), "lobu-plugin-"));
  return startGateway({
    config: LobuConfig.parse({
      sandbox: { driver: "host", allow_unsandboxed: true },
      platforms,
    }),
    dataDir,
    port: 0,
    env: { ANTHROPIC_API_KEY: "sk-ant-plugin-tests-0123456789", ANTHROPIC_BASE_URL: llm.url },
    log: createLogger("test", { level: "silent" }),
    platforms: plugins,
  });
}

beforeAll(async () => {
  llm = await startMockLlm();
});

afterAll(async () => {
  await gw?.close();
  if (dataDir) removeDataDir(dataDir);
  await llm?.close();
});

describe("platform plugins", () => {
  it("refuses a [platforms.<name>] nobody registered, naming the registered ones", async () => {
    const err = await start({ matrix: {} }, [...PLATFORMS, echo]).catch((e: unknown) => e);
    expect(isLobuError(err) && err.code).toBe("config_invalid");
    expect((err as Error).message).toContain("[platforms.matrix]");
    expect(isLobuError(err) && err.hint).toContain(
      [...PLATFORMS, echo].map((p) => `[platforms.${p.id}]`).join(", "),
    );
    expect(isLobuError(err) && err.hint).toContain("[platforms.slack], [platforms.telegram]");
  });

  it("runs a registered platform: its section, its routes, its context, its replies", async () => {
    gw = await start({ echo: { greeting: "hi" } }, [...PLATFORMS, echo]);
    expect(seen.at(-1)?.section).toEqual({ greeting: "hi" });
    expect(gw.summary.platforms).toEqual(["echo"]);
    const reply = adapter!.nextDelivery();
    const res = await fetch(`${gw.url}/echo/webhook`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user: "ada", text: "hello from a new platform" }),
    });
    expect(res.status).toBe(200);
    const { origin, events } = await reply;
    expect(origin).toMatchObject({ platform: "echo", userId: "ada" });
    expect(events.at(-1)).toEqual({ type: "done", text: "echo: hello from a new platform" });
    // The context is the platform's way in: settings links for its people, namespaced state.
    expect(await adapter!.ctx!.settingsLink(origin)).toMatch(
      new RegExp(`^${gw.url}/settings/claim/`),
    );
    await adapter!.ctx!.state.set("k", "v");
    expect(await adapter!.ctx!.state.get("k")).toBe("v");
  });
});
