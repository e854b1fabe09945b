import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "@lobu/core";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../src/audit/log.ts";
import { Accounts, LINK_CODE_TTL_MS, normalizeLinkCode } from "../../src/people/accounts.ts";
import { MemoryStore } from "../../src/people/memory.ts";
import { UserSettingsStore } from "../../src/people/user-settings.ts";
import { linkCommandReply } from "../../src/runtime/link-command.ts";
import { SecretStore } from "../../src/secrets/store.ts";
import { createStore, type Store } from "../../src/store/index.ts";

/**
 * Linking identities into one account, attacked: codes reused, expired,
 * forwarded, guessed, carried to another installation; identities linked
 * twice, in cycles, or pulled into someone else's account. And what linking
 * is for: settings, own secrets and memory shared by the account, back to
 * the identity's own after unlinking.
 */

const log = createLogger("test", { destination: { write: () => {} } });
const ALICE_SLACK = "slack:T1:UALICE";
const ALICE_TG = "telegram::1001";
const ALICE_API = "api:app:alice";
const MALLORY = "telegram::6666";
const MALLORY_2 = "slack:T1:UMALLORY";

const dirs: string[] = [];
const stores: Store[] = [];
let store: Store;
let clock: number;
let audit: Omit<AuditRecord, "at">[];
let accounts: Accounts;

async function freshStore(): Promise<Store> {
  const dir = mkdtempSync(join(tmpdir(), "lobu-accounts-"));
  dirs.push(dir);
  const s = await createStore({ driver: "sqlite", path: join(dir, "lobu.db") });
  stores.push(s);
  return s;
}

beforeEach(async () => {
  store = await freshStore();
  clock = Date.now();
  audit = [];
  accounts = new Accounts({ kv: store.kv, audit: (e) => audit.push(e), now: () => clock });
});

afterAll(async () => {
  for (const s of stores) await s.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The full handshake: `creator` offers, `joiner` enters it, `creator` enters the finishing code. */
async function link(joiner: string, creator: string) {
  const offer = await accounts.createCode(creator);
  const pending = await accounts.confirm(joiner, offer.code);
  if (pending.step !== "pending") throw new Error("an offer linked at once");
  const done = await accounts.confirm(creator, pending.code);
  if (done.step !== "linked") throw new Error("a finishing code did not link");
  return done.linked;
}

/** `joiner` enters `creator`'s offer: the finishing code it is shown. */
async function offerTaken(joiner: string, creator: string): Promise<string> {
  const pending = await accounts.confirm(joiner, (await accounts.createCode(creator)).code);
  if (pending.step !== "pending") throw new Error("an offer linked at once");
  return pending.code;
}

describe("link codes", () => {
  it("take both sides: an offer entered links nothing; the creator's finishing code links, once", async () => {
    const { code, expiresAt } = await accounts.createCode(ALICE_SLACK);
    expect(code).toMatch(/^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$/);
    expect(expiresAt).toBe(clock + LINK_CODE_TTL_MS);
    const pending = await accounts.confirm(ALICE_TG, code.toLowerCase().replace("-", " "));
    expect(pending).toMatchObject({ step: "pending", expiresAt: clock + LINK_CODE_TTL_MS });
    if (pending.step !== "pending") throw new Error("unreachable");
    expect(pending.code).not.toBe(code);
    expect(await accounts.accountOf(ALICE_TG)).toBe(ALICE_TG);
    const done = await accounts.confirm(ALICE_SLACK, pending.code);
    expect(done).toEqual({
      step: "linked",
      joined: ALICE_TG,
      linked: { account: ALICE_SLACK, identities: [ALICE_SLACK, ALICE_TG] },
    });
    expect(await accounts.accountOf(ALICE_TG)).toBe(ALICE_SLACK);
    expect(await accounts.accountOf(ALICE_SLACK)).toBe(ALICE_SLACK);
    // Reused: either code, by anyone, the same identities included.
    for (const [who, c] of [
      [MALLORY, code],
      [ALICE_API, code],
      [ALICE_SLACK, pending.code],
      [MALLORY, pending.code],
    ] as const)
      await expect(accounts.confirm(who, c)).rejects.toMatchObject({ code: "link_code_invalid" });
    expect(await accounts.accountOf(MALLORY)).toBe(MALLORY);
    expect(audit.map((a) => a.action)).toEqual([
      "identity.link_code_created",
      "identity.link_pending",
      "identity.linked",
      "identity.link_failed",
      "identity.link_failed",
      "identity.link_failed",
      "identity.link_failed",
    ]);
    expect(audit.find((a) => a.action === "identity.linked")).toEqual({
      action: "identity.linked",
      actor: ALICE_TG,
      details: {
        account: ALICE_SLACK,
        identity: ALICE_TG,
        codeBy: ALICE_SLACK,
        approvedBy: ALICE_SLACK,
      },
    });
    // Stored as digests only: neither code is anywhere in the store.
    const all = JSON.stringify(await store.kv.list("link:"));
    expect(all).not.toContain(code.replace("-", ""));
    expect(all).not.toContain(pending.code.replace("-", ""));
  });

  it("a forwarded offer never links: the finishing code works for the offer's creator only", async () => {
    // Mallory reads alice's offer (forwarded, over a shoulder) and enters it.
    const finish = await offerTaken(MALLORY, ALICE_SLACK);
    expect(await accounts.accountOf(MALLORY)).toBe(MALLORY);
    // Mallory cannot finish it herself, from the account that entered it or any other of hers.
    await expect(accounts.confirm(MALLORY, finish)).rejects.toMatchObject({
      code: "link_code_invalid",
    });
    const again = await offerTaken(MALLORY, ALICE_SLACK);
    await expect(accounts.confirm(MALLORY_2, again)).rejects.toMatchObject({
      code: "link_code_invalid",
    });
    // Nor can alice's other identity (not the offer's creator) approve it for her.
    await link(ALICE_TG, ALICE_SLACK);
    const third = await offerTaken(MALLORY, ALICE_SLACK);
    await expect(accounts.confirm(ALICE_TG, third)).rejects.toMatchObject({
      code: "link_code_invalid",
    });
    // The refused attempt consumed it: the creator cannot be talked into it afterwards either.
    await expect(accounts.confirm(ALICE_SLACK, third)).rejects.toMatchObject({
      code: "link_code_invalid",
    });
    expect(await accounts.accountOf(MALLORY)).toBe(MALLORY);
    expect(await accounts.accountOf(MALLORY_2)).toBe(MALLORY_2);
    expect(audit.filter((a) => a.action === "identity.link_failed").map((a) => a.details)).toEqual([
      { reason: "wrong_account" },
      { reason: "wrong_account" },
      { reason: "wrong_account" },
      { reason: "unknown" },
    ]);
  });

  it("expire after ten minutes, on both steps", async () => {
    const { code } = await accounts.createCode(ALICE_SLACK);
    clock += LINK_CODE_TTL_MS + 1;
    await expect(accounts.confirm(ALICE_TG, code)).rejects.toMatchObject({
      code: "link_code_invalid",
      status: 400,
    });
    const finish = await offerTaken(ALICE_TG, ALICE_SLACK);
    clock += LINK_CODE_TTL_MS;
    await expect(accounts.confirm(ALICE_SLACK, finish)).rejects.toMatchObject({
      code: "link_code_invalid",
    });
    expect(await accounts.accountOf(ALICE_TG)).toBe(ALICE_TG);
  });

  it("are replaced by a newer code of the same identity", async () => {
    const first = await accounts.createCode(ALICE_SLACK);
    const second = await accounts.createCode(ALICE_SLACK);
    await expect(accounts.confirm(ALICE_TG, first.code)).rejects.toMatchObject({
      code: "link_code_invalid",
    });
    const pending = await accounts.confirm(ALICE_TG, second.code);
    expect(pending.step).toBe("pending");
  });

  it("never pull the creator into the confirmer's account", async () => {
    // Mallory's offer, entered by alice (talked into it): alice is handed a
    // finishing code, and only Mallory can finish. Even then alice joins
    // Mallory's account only because alice entered the offer herself and
    // passed the code on; Mallory's own identities never reach alice's.
    await link(MALLORY_2, MALLORY);
    // alice's offer, entered by Mallory (linked elsewhere): refused at once, no finishing code.
    const leaked = await accounts.createCode(ALICE_SLACK);
    await expect(accounts.confirm(MALLORY, leaked.code)).rejects.toMatchObject({
      code: "link_refused",
    });
    expect(await accounts.accountOf(ALICE_SLACK)).toBe(ALICE_SLACK);
    // The attempt consumed the code: alice's real second identity needs a new one.
    await expect(accounts.confirm(ALICE_TG, leaked.code)).rejects.toMatchObject({
      code: "link_code_invalid",
    });
    expect(audit.filter((a) => a.action === "identity.link_refused")).toEqual([
      {
        action: "identity.link_refused",
        actor: MALLORY,
        details: { account: ALICE_SLACK, reason: "linked_elsewhere" },
      },
    ]);
  });

  it("are bound to the installation that made them", async () => {
    const other = new Accounts({ kv: (await freshStore()).kv, audit: () => {} });
    const { code } = await accounts.createCode(ALICE_SLACK);
    await expect(other.confirm(ALICE_TG, code)).rejects.toMatchObject({
      code: "link_code_invalid",
    });
    expect(await other.accountOf(ALICE_TG)).toBe(ALICE_TG);
    // And the code is still good where it was made (the failed try elsewhere did not consume it).
    const pending = await accounts.confirm(ALICE_TG, code);
    if (pending.step !== "pending") throw new Error("unreachable");
    await expect(other.confirm(ALICE_SLACK, pending.code)).rejects.toMatchObject({
      code: "link_code_invalid",
    });
    expect((await accounts.confirm(ALICE_SLACK, pending.code)).step).toBe("linked");
  });

  it("cannot be guessed: wrong codes lock the identity out, the right one included", async () => {
    const { code } = await accounts.createCode(ALICE_SLACK);
    expect(normalizeLinkCode(code)).toHaveLength(10); // 32^10 = 2^50 codes
    for (let i = 0; i < 5; i++)
      await expect(accounts.confirm(MALLORY, "00000-00000")).rejects.toMatchObject({
        code: "link_code_invalid",
      });
    await expect(accounts.confirm(MALLORY, code)).rejects.toMatchObject({
      code: "link_rate_limited",
      status: 429,
    });
    expect(await accounts.accountOf(MALLORY)).toBe(MALLORY);
    // Garbage of any shape is refused the same way, without reaching the store.
    await expect(accounts.confirm(ALICE_TG, "'; DROP --")).rejects.toMatchObject({
      code: "link_code_invalid",
    });
    // Others are not locked out by Mallory.
    expect((await accounts.confirm(ALICE_TG, code)).step).toBe("pending");
  });

  it("lock out guessing of finishing codes too, by the creator as by anyone", async () => {
    const finish = await offerTaken(ALICE_TG, ALICE_SLACK);
    for (let i = 0; i < 5; i++)
      await expect(accounts.confirm(ALICE_SLACK, "ZZZZZ-ZZZZZ")).rejects.toMatchObject({
        code: "link_code_invalid",
      });
    await expect(accounts.confirm(ALICE_SLACK, finish)).rejects.toMatchObject({
      code: "link_rate_limited",
    });
    expect(await accounts.accountOf(ALICE_TG)).toBe(ALICE_TG);
  });

  it("are limited per identity", async () => {
    for (let i = 0; i < 10; i++) await accounts.createCode(MALLORY);
    await expect(accounts.createCode(MALLORY)).rejects.toMatchObject({
      code: "link_rate_limited",
    });
  });

  it("refuse a tampered record whose digest does not match the key it is filed under", async () => {
    const finish = await offerTaken(MALLORY, ALICE_SLACK);
    // A record copied under another code's key (store access, a bug): refused.
    const [finishRow] = await store.kv.list("link:code:");
    const { code: forged } = await accounts.createCode(MALLORY_2);
    const forgedRow = (await store.kv.list("link:code:")).find((r) => r.key !== finishRow!.key)!;
    await store.kv.set(forgedRow.key, finishRow!.value);
    await expect(accounts.confirm(ALICE_SLACK, forged)).rejects.toMatchObject({
      code: "link_code_invalid",
    });
    expect(await accounts.accountOf(MALLORY)).toBe(MALLORY);
    expect(finish).toBeDefined();
  });
});

describe("accounts", () => {
  it("refuse an identity linked elsewhere, cycles and self-links; stay one level deep", async () => {
    await link(ALICE_TG, ALICE_SLACK);
    // Self and same-account links.
    await expect(
      accounts.confirm(ALICE_SLACK, (await accounts.createCode(ALICE_SLACK)).code),
    ).rejects.toMatchObject({ code: "link_refused" });
    // The cycle: the primary confirming its member's code.
    await expect(
      accounts.confirm(ALICE_SLACK, (await accounts.createCode(ALICE_TG)).code),
    ).rejects.toMatchObject({ code: "link_refused" });
    // A member confirming a third account's code: refused, not moved silently.
    await expect(
      accounts.confirm(ALICE_TG, (await accounts.createCode(MALLORY)).code),
    ).rejects.toMatchObject({ code: "link_refused" });
    // A primary with members joining another account: refused (no chains).
    await expect(
      accounts.confirm(ALICE_SLACK, (await accounts.createCode(MALLORY)).code),
    ).rejects.toMatchObject({ code: "link_refused" });
    // A code made by a member links into the primary's account.
    await link(ALICE_API, ALICE_TG);
    expect(await accounts.linked(ALICE_API)).toEqual({
      account: ALICE_SLACK,
      identities: [ALICE_SLACK, ALICE_TG, ALICE_API],
    });
    expect(await accounts.all()).toEqual([
      { account: ALICE_SLACK, identities: [ALICE_SLACK, ALICE_TG, ALICE_API] },
    ]);
  });

  it("unlink a member, or dissolve when the primary leaves", async () => {
    await link(ALICE_TG, ALICE_SLACK);
    await link(ALICE_API, ALICE_SLACK);
    expect(await accounts.unlink(ALICE_TG, ALICE_SLACK)).toBe(true);
    expect(await accounts.accountOf(ALICE_TG)).toBe(ALICE_TG);
    expect((await accounts.linked(ALICE_SLACK)).identities).toEqual([ALICE_SLACK, ALICE_API]);
    expect(await accounts.unlink(ALICE_SLACK, ALICE_SLACK)).toBe(true);
    expect(await accounts.accountOf(ALICE_API)).toBe(ALICE_API);
    expect(await accounts.all()).toEqual([]);
    expect(await accounts.unlink(ALICE_SLACK, ALICE_SLACK)).toBe(false);
    expect(audit.filter((a) => a.action === "identity.unlinked")).toHaveLength(2);
  });

  it("are exported and erased as person data (erasing an identity unlinks it)", async () => {
    await link(ALICE_TG, ALICE_SLACK);
    const kind = accounts.personData();
    const tg = { userKey: ALICE_TG, platform: "telegram", workspace: "", userId: "1001" };
    expect(await kind.export(tg)).toEqual({
      account: ALICE_SLACK,
      identities: [ALICE_SLACK, ALICE_TG],
    });
    expect(await kind.erase(tg)).toEqual({ links: 1 });
    expect(await kind.export(tg)).toBeUndefined();
    expect(await kind.erase(tg)).toEqual({ links: 0 });
  });
});

describe("what linked identities share", () => {
  it("settings, own secrets and memory follow the account; unlinking goes back to the identity's own", async () => {
    const accountOf = accounts.accountOf;
    const secrets = new SecretStore(store.kv, randomBytes(32), { log, accountOf });
    const settings = new UserSettingsStore(store.kv, log, accountOf);
    const memory = new MemoryStore({
      kv: store.kv,
      secrets,
      log,
      limits: { maxEntries: 10, maxEntryChars: 200 },
      accountOf,
    });
    const userSecret = (userKey: string) =>
      ({
        name: "ANTHROPIC_API_KEY",
        scope: { kind: "user", agentId: "default", userKey },
      }) as const;
    await settings.update("default", ALICE_TG, (s) => ({ ...s, model: "own-before-link" }));
    await link(ALICE_TG, ALICE_SLACK);

    await settings.update("default", ALICE_SLACK, (s) => ({ ...s, model: "claude-shared" }));
    await secrets.set(userSecret(ALICE_TG), "sk-ant-shared-0123456789");
    await memory.add("default", ALICE_SLACK, "Alice drinks green tea", {
      platform: "slack",
      channelId: "D1",
    });
    expect((await settings.get("default", ALICE_TG)).model).toBe("claude-shared");
    expect(
      (await secrets.resolve("ANTHROPIC_API_KEY", { agentId: "default", userKey: ALICE_SLACK }))
        ?.value,
    ).toBe("sk-ant-shared-0123456789");
    expect((await memory.search("default", ALICE_TG, "tea", 5)).map((e) => e.text)).toEqual([
      "Alice drinks green tea",
    ]);
    // Mallory, unlinked, sees none of it.
    expect(
      await secrets.resolve("ANTHROPIC_API_KEY", { agentId: "default", userKey: MALLORY }),
    ).toBeNull();
    expect(await memory.list("default", MALLORY)).toEqual([]);

    await accounts.unlink(ALICE_TG, ALICE_TG);
    expect((await settings.get("default", ALICE_TG)).model).toBe("own-before-link");
    expect(await secrets.get(userSecret(ALICE_TG))).toBeNull();
    expect(await memory.list("default", ALICE_TG)).toEqual([]);
    expect((await settings.get("default", ALICE_SLACK)).model).toBe("claude-shared");
  });
});

describe("the link command", () => {
  const origin = (platform: string, userId: string, isDirect = true) => ({
    platform,
    workspace: platform === "slack" ? "T1" : "",
    channelId: "c1",
    userId,
    isDirect,
  });

  it("shows a code in a direct message only, and links the sender", async () => {
    const deps = { accounts };
    expect(await linkCommandReply(deps, { text: "hello", origin: origin("slack", "UALICE") })).toBe(
      undefined,
    );
    expect(
      await linkCommandReply(deps, { text: "link", origin: origin("slack", "UALICE", false) }),
    ).toMatch(/direct message/);
    expect(audit).toEqual([]);
    const shown = await linkCommandReply(deps, { text: "link", origin: origin("slack", "UALICE") });
    const code = /code is ([0-9A-Z]{5}-[0-9A-Z]{5})/.exec(shown ?? "")![1]!;
    const reply = await linkCommandReply(deps, {
      text: `/link@lobu_bot ${code}`,
      origin: origin("telegram", "1001"),
    });
    expect(reply).toMatch(/^Almost there: nothing is linked yet/);
    expect(await accounts.accountOf(ALICE_TG)).toBe(ALICE_TG);
    const finish = /finishing code is ([0-9A-Z]{5}-[0-9A-Z]{5})/.exec(reply ?? "")![1]!;
    // Sent back from the Telegram side (the one that entered the offer): refused.
    expect(
      await linkCommandReply(deps, { text: `link ${finish}`, origin: origin("telegram", "1001") }),
    ).toMatch(/unknown, used or expired/);
    // From the offer's creator, with a fresh handshake: linked, and the joiner is named.
    const offer = await linkCommandReply(deps, { text: "link", origin: origin("slack", "UALICE") });
    const taken = await linkCommandReply(deps, {
      text: `link ${/code is ([0-9A-Z-]{11})/.exec(offer ?? "")![1]}`,
      origin: origin("telegram", "1001"),
    });
    const last = /finishing code is ([0-9A-Z-]{11})/.exec(taken ?? "")![1]!;
    expect(
      await linkCommandReply(deps, { text: `link ${last}`, origin: origin("slack", "UALICE") }),
    ).toMatch(/^Linked: telegram::1001 now shares/);
    expect(await accounts.accountOf(ALICE_TG)).toBe(ALICE_SLACK);
    expect(
      await linkCommandReply(deps, { text: `link ${code}`, origin: origin("api", "x") }),
    ).toMatch(/unknown, used or expired/);
  });
});
