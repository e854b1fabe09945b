import type { GatewayProcess, MockLlm } from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  attack,
  curlStatus,
  curlStep,
  egressAudit,
  freshSecret,
  putSecret,
  sandboxOf,
  sections,
  startTarget,
  type Target,
  type Upstream,
} from "./helpers.ts";

/**
 * A secret's life through the API, end to end: set, rotate (the next request
 * carries the new value, the worker's placeholder stays the same), delete (the
 * swap stops and the audit log says why), and never a real value in the
 * gateway's own output, even at debug level.
 */

const PROVIDER_V1 = freshSecret("sk-ant-one-");
const PROVIDER_V2 = freshSecret("sk-ant-two-");
const GITHUB_V1 = freshSecret("ghp_one_");
const GITHUB_V2 = freshSecret("ghp_two_");
let target: Target;
let llm: MockLlm;
let gw: GatewayProcess;
let secure: Upstream;

beforeAll(async () => {
  target = await startTarget({
    providerKey: PROVIDER_V1,
    // No key check in the mock: the test asserts which key each request carried.
    llmChecksKey: false,
    toml: `
[network]
allow_private_ranges = ["127.0.0.1/32"]
[agents.default.secrets]
GITHUB_TOKEN = { secret = "github", hosts = ["secure.allowed.test"] }
`,
    resolve: ["secure.allowed.test=127.0.0.1"],
    env: { LOBU_LOG_LEVEL: "debug" },
  });
  ({ gw, llm } = target);
  secure = await target.upstream("secure.allowed.test");
});

afterAll(() => target?.stop());

describe("secret lifecycle through the API", () => {
  const url = () => `https://secure.allowed.test:${secure.port}`;
  let placeholder = "";

  it("set: the bound host receives the value", async () => {
    await putSecret(gw, "/api/v1/agents/default/secrets/github", GITHUB_V1);
    const cmd = [
      'echo "$GITHUB_TOKEN" > token.txt; echo "### token"; cat token.txt',
      curlStep("call", `-H "Authorization: Bearer $GITHUB_TOKEN" ${url()}/v1`),
    ].join("\n");
    const { output } = await attack(gw, llm, cmd, { user: "owner" });
    const got = sections(output);
    placeholder = got.get("token")!.trim();
    expect(placeholder).toMatch(/^lobu_secret_[0-9a-f-]{36}$/);
    expect(curlStatus(got.get("call")!).http).toBe(200);
    expect(secure.received.find((r) => r.url === "/v1")?.headers.authorization).toBe(
      `Bearer ${GITHUB_V1}`,
    );
    expect(llm.requests.at(-1)?.apiKey).toBe(PROVIDER_V1);
  });

  it("rotate: the next turn's request carries the new value; the placeholder is unchanged", async () => {
    await putSecret(gw, "/api/v1/agents/default/secrets/github", GITHUB_V2);
    await putSecret(gw, "/api/v1/secrets/provider.anthropic", PROVIDER_V2);
    const cmd = [
      'echo "### token"; echo "$GITHUB_TOKEN"',
      curlStep("call", `-H "Authorization: Bearer $GITHUB_TOKEN" ${url()}/v2`),
    ].join("\n");
    const before = llm.requests.length;
    const { output } = await attack(gw, llm, cmd, { user: "owner" });
    const got = sections(output);
    expect(got.get("token")!.trim()).toBe(placeholder);
    expect(secure.received.find((r) => r.url === "/v2")?.headers.authorization).toBe(
      `Bearer ${GITHUB_V2}`,
    );
    // Both model calls of the turn used the rotated provider key.
    const calls = llm.requests.slice(before);
    expect(calls.length).toBeGreaterThanOrEqual(2);
    expect(calls.every((r) => r.apiKey === PROVIDER_V2)).toBe(true);
  });

  it("delete: the swap stops, the host receives the placeholder, and the audit log says why", async () => {
    const res = await gw.api("/api/v1/agents/default/secrets/github", { method: "DELETE" });
    expect(res.status).toBe(204);
    const cmd = [
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion
      'echo "### env"; echo "${GITHUB_TOKEN:-unset}"',
      // The agent kept the old placeholder in a file and tries it anyway.
      curlStep("call", `-H "Authorization: Bearer $(cat token.txt)" ${url()}/v3`),
    ].join("\n");
    const { output } = await attack(gw, llm, cmd, { user: "owner" });
    const got = sections(output);
    // The next turn no longer gets the variable at all.
    expect(got.get("env")!.trim()).toBe("unset");
    expect(curlStatus(got.get("call")!).http).toBe(200);
    expect(secure.received.find((r) => r.url === "/v3")?.headers.authorization).toBe(
      `Bearer ${placeholder}`,
    );
    const sandbox = await sandboxOf(gw, "owner");
    const records = (await egressAudit(gw)).filter(
      (r) => r.sandboxId === sandbox && r.details?.host === "secure.allowed.test",
    );
    const last = records.find((r) => r.action === "egress.allowed");
    expect(last?.details).toMatchObject({
      unswapped: 1,
      notes: ["secret github no longer exists"],
    });
    expect(records.filter((r) => r.action === "egress.swapped")).toHaveLength(2);
  });

  it("reset: the sandbox's placeholders are revoked; the old one is worthless, the next turn gets a new one", async () => {
    await putSecret(gw, "/api/v1/agents/default/secrets/github", GITHUB_V1);
    const sandbox = await sandboxOf(gw, "owner");
    const reset = await gw.api(`/api/v1/sandboxes/${sandbox}/reset`, {
      method: "POST",
      body: JSON.stringify({ wipe: true }),
    });
    expect(reset.status, await reset.clone().text()).toBe(200);
    expect(
      ((await reset.json()) as { revokedPlaceholders: number }).revokedPlaceholders,
    ).toBeGreaterThan(0);
    const cmd = [
      'echo "### token"; echo "$GITHUB_TOKEN"',
      curlStep("old", `-H "Authorization: Bearer ${placeholder}" ${url()}/old`),
      curlStep("new", `-H "Authorization: Bearer $GITHUB_TOKEN" ${url()}/new`),
    ].join("\n");
    const { output } = await attack(gw, llm, cmd, { user: "owner" });
    const fresh = sections(output).get("token")!.trim();
    expect(fresh).toMatch(/^lobu_secret_[0-9a-f-]{36}$/);
    expect(fresh).not.toBe(placeholder);
    expect(secure.received.find((r) => r.url === "/old")?.headers.authorization).toBe(
      `Bearer ${placeholder}`,
    );
    expect(secure.received.find((r) => r.url === "/new")?.headers.authorization).toBe(
      `Bearer ${GITHUB_V1}`,
    );
    const rec = (await egressAudit(gw)).find(
      (r) => r.sandboxId === sandbox && r.details?.notes?.length,
    );
    expect(rec?.details?.notes).toEqual(["unknown or revoked placeholder"]);
  });

  it("never prints a real value, even with LOBU_LOG_LEVEL=debug", async () => {
    const out = gw.output();
    // Debug logging was really on.
    expect(out).toMatch(/"level":20/);
    for (const value of [PROVIDER_V1, PROVIDER_V2, GITHUB_V1, GITHUB_V2]) {
      expect(out).not.toContain(value);
    }
    // Nor the audit log.
    const audit = JSON.stringify(await (await gw.api("/api/v1/audit?limit=1000")).json());
    for (const value of [PROVIDER_V1, PROVIDER_V2, GITHUB_V1, GITHUB_V2, placeholder]) {
      expect(audit).not.toContain(value);
    }
  });
});
