import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rootCertificates } from "node:tls";
import { describe, expect, it } from "vitest";
import { egressTestHooks, parseTestResolve, testResolver } from "../../src/proxy/test-mode.ts";

describe("egress test hooks", () => {
  it("are off without their variables, and refused without LOBU_TEST_MODE=1", () => {
    expect(egressTestHooks({})).toBeNull();
    expect(egressTestHooks({ LOBU_TEST_MODE: "1" })).toBeNull();
    expect(() => egressTestHooks({ LOBU_TEST_RESOLVE: "a.test=127.0.0.1" })).toThrow(
      /LOBU_TEST_RESOLVE is test-only and LOBU_TEST_MODE is not 1/,
    );
    expect(() =>
      egressTestHooks({ LOBU_TEST_UPSTREAM_CA: "/x.pem", LOBU_TEST_MODE: "true" }),
    ).toThrow(/LOBU_TEST_UPSTREAM_CA is test-only/);
  });

  it("parse fixed answers, canonicalizing names and addresses", () => {
    const map = parseTestResolve(" API.Allowed.test.=127.0.0.1 , dual.test=10.0.0.1|0:0::1 ");
    expect([...map.entries()]).toEqual([
      ["api.allowed.test", [{ address: "127.0.0.1", family: 4 }]],
      [
        "dual.test",
        [
          { address: "10.0.0.1", family: 4 },
          { address: "::1", family: 6 },
        ],
      ],
    ]);
    for (const bad of ["noequals", "=1.2.3.4", "a.test=", "a.test=not-an-ip", "a b=1.2.3.4"]) {
      expect(() => parseTestResolve(bad), bad).toThrow(/is not name=address/);
    }
  });

  it("answer mapped names and fall back for the rest", async () => {
    const resolve = testResolver(parseTestResolve("a.test=127.0.0.1"), async (h) => [
      { address: h === "b.test" ? "192.0.2.1" : "0.0.0.0", family: 4 },
    ]);
    expect(await resolve("a.test")).toEqual([{ address: "127.0.0.1", family: 4 }]);
    expect(await resolve("b.test")).toEqual([{ address: "192.0.2.1", family: 4 }]);
  });

  it("add the test CA to the public roots, never replace them", () => {
    const dir = mkdtempSync(join(tmpdir(), "lobu-test-ca-"));
    writeFileSync(join(dir, "ca.pem"), "PEM");
    const hooks = egressTestHooks({
      LOBU_TEST_MODE: "1",
      LOBU_TEST_UPSTREAM_CA: join(dir, "ca.pem"),
    });
    expect(hooks?.upstreamCa).toEqual([...rootCertificates, "PEM"]);
    expect(() =>
      egressTestHooks({ LOBU_TEST_MODE: "1", LOBU_TEST_UPSTREAM_CA: join(dir, "missing.pem") }),
    ).toThrow(/cannot read/);
  });
});
