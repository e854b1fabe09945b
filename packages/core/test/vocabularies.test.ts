import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  AgentEvent,
  ApprovalChoice,
  CapabilityChoice,
  choiceIn,
  DECISIONS,
  decisionChoices,
  ERROR_CODES,
  errorBody,
  LobuError,
  type LobuErrorCode,
  RequestOutcome,
  RequestStatus,
  TurnErrorCode,
} from "../src/index.ts";

const ROOT = join(import.meta.dirname, "../../..");

/** The rows of the first Markdown table after `heading` in a doc: first cell (unquoted) → other cells. */
function tableAfter(doc: string, heading: string): Map<string, string[]> {
  const text = readFileSync(join(ROOT, "docs", doc), "utf8");
  const start = text.indexOf(`\n${heading}\n`);
  expect(start, `${doc} has a section "${heading}"`).toBeGreaterThan(-1);
  const lines = text.slice(start).split("\n");
  const first = lines.findIndex((l) => l.startsWith("|"));
  const rows = new Map<string, string[]>();
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith("|")) break;
    const [name, ...rest] = line
      .split("|")
      .slice(1, -1)
      .map((cell) => cell.trim());
    rows.set(name!.replace(/^`|`$/g, ""), rest);
  }
  return rows;
}

/** Every source file of every package (not tests, not build output). */
function sources(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.tsx?$/.test(entry.name)) out.push(path);
    }
  };
  for (const pkg of readdirSync(join(ROOT, "packages"))) {
    try {
      walk(join(ROOT, "packages", pkg, "src"));
    } catch {}
  }
  return out;
}

describe("error codes", () => {
  const codes = Object.keys(ERROR_CODES) as LobuErrorCode[];

  it("are documented in docs/api.md, each with its status, and nothing else is", () => {
    const documented = tableAfter("api.md", "### Error codes");
    expect([...documented.keys()].sort()).toEqual([...codes].sort());
    for (const code of codes)
      expect(documented.get(code)?.[0], `status of ${code}`).toBe(String(ERROR_CODES[code].status));
  });

  it("are each used somewhere in the sources (the table holds no dead code)", () => {
    const text = sources()
      .filter((f) => !f.endsWith("error-codes.ts"))
      .map((f) => readFileSync(f, "utf8"))
      .join("\n");
    const unused = codes.filter((code) => !text.includes(`"${code}"`));
    expect(unused).toEqual([]);
  });

  it("give a LobuError its status unless it names one", () => {
    expect(new LobuError("too_many_streams", "x").status).toBe(429);
    expect(new LobuError("not_found", "x").status).toBe(404);
    expect(new LobuError("request_not_answerable", "x", { status: 403 }).status).toBe(403);
  });

  it("make the same body whether thrown or answered directly", () => {
    const thrown = new LobuError("replayed_request", "a copy", { hint: "sign anew" });
    expect(thrown.toJSON()).toEqual(errorBody("replayed_request", "a copy", { hint: "sign anew" }));
    expect(JSON.stringify(new LobuError("malformed_json", "bad"))).toBe(
      '{"error":{"code":"malformed_json","message":"bad"}}',
    );
  });
});

describe("turn error codes", () => {
  it("are each explained in docs/protocol.md, and nothing else is", () => {
    const documented = tableAfter("protocol.md", "### Turn errors");
    expect([...documented.keys()].sort()).toEqual([...TurnErrorCode.options].sort());
  });

  it("a failed turn's error event carries one of them, a gateway code, or how it ended; nothing else", () => {
    const event = (code: string) => AgentEvent.safeParse({ type: "error", code, message: "m" });
    for (const code of [...TurnErrorCode.options, "budget_exceeded", "internal", "cancelled"])
      expect(event(code).success, code).toBe(true);
    for (const code of ["done", "x", ""]) expect(event(code).success, code).toBe(false);
  });
});

describe("answer choices", () => {
  it("offer an approval's and a capability request's choices in their order", () => {
    expect(decisionChoices("approval_request")).toEqual(["approve", "deny", "always"]);
    expect(decisionChoices("capability_request")).toEqual(["granted", "denied"]);
  });

  it("offer only Deny for an approval that cannot be shown whole", () => {
    expect(decisionChoices("approval_request", false)).toEqual(["deny"]);
    expect(decisionChoices("capability_request", false)).toEqual(["granted", "denied"]);
  });

  it("say which choices let a request go ahead", () => {
    const granting = (Object.keys(DECISIONS) as (keyof typeof DECISIONS)[]).filter(
      (c) => DECISIONS[c].grants,
    );
    expect(granting.sort()).toEqual(["always", "approve", "granted"]);
  });

  it("recognise a choice only among its own kind's", () => {
    expect(choiceIn(ApprovalChoice, "always")).toBe("always");
    expect(choiceIn(ApprovalChoice, "granted")).toBeUndefined();
    expect(choiceIn(CapabilityChoice, "granted")).toBe("granted");
    expect(choiceIn(CapabilityChoice, undefined)).toBeUndefined();
    expect(choiceIn(CapabilityChoice, "o1")).toBeUndefined();
  });

  it("end a request as pending, or answered or expired", () => {
    expect(RequestStatus.options).toEqual(["pending", ...RequestOutcome.options]);
    expect(RequestOutcome.options).toEqual(["answered", "expired"]);
  });
});
