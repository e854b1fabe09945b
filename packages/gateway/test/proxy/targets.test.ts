import { IncomingMessage } from "node:http";
import net from "node:net";
import { describe, expect, it } from "vitest";
import { parseErrorRefusal } from "../../src/proxy/client-errors.ts";
import { parseAuthority } from "../../src/proxy/connect.ts";
import { innerTarget } from "../../src/proxy/intercepted.ts";
import { classifyTarget } from "../../src/proxy/plain-http.ts";

/** How each kind of request names where it goes, and what the proxy makes of it. */

describe("classifyTarget (plain requests)", () => {
  it("forwards absolute http and https URLs, with their default ports", () => {
    expect(classifyTarget("http://api.example.com/a?b=1")).toEqual({
      kind: "forward",
      protocol: "http:",
      hostname: "api.example.com",
      port: 80,
      path: "/a?b=1",
    });
    expect(classifyTarget("https://[::1]:8443/")).toMatchObject({
      kind: "forward",
      protocol: "https:",
      hostname: "[::1]",
      port: 8443,
    });
  });

  it("hands /__lobu/* to the internal API, also in absolute form to a loopback name", () => {
    expect(classifyTarget("/__lobu/llm/v1?x=1")).toEqual({
      kind: "internal",
      path: "/__lobu/llm/v1?x=1",
    });
    expect(classifyTarget("http://localhost:8080/__lobu/llm?x=1")).toEqual({
      kind: "internal",
      path: "/__lobu/llm?x=1",
    });
    expect(classifyTarget("http://api.example.com/__lobu/llm")).toMatchObject({ kind: "forward" });
  });

  it("refuses other origin-form paths, invalid URLs and other schemes as bad requests", () => {
    const origin = classifyTarget("/admin");
    expect(origin).toMatchObject({
      kind: "refused",
      refusal: { status: 400, kind: "bad_request" },
    });
    if (origin.kind === "refused")
      expect(origin.refusal.reason).toContain("is not a proxy request");
    expect(classifyTarget("http://")).toMatchObject({
      kind: "refused",
      refusal: { status: 400, reason: "the request target is not a valid URL" },
    });
    expect(classifyTarget("ftp://files.example.com/x")).toMatchObject({
      kind: "refused",
      refusal: {
        status: 400,
        host: "files.example.com",
        reason: "ftp: URLs are not supported by the proxy",
      },
    });
  });
});

describe("parseAuthority (CONNECT)", () => {
  it("takes host:port, IPv6 in brackets, and nothing else", () => {
    expect(parseAuthority("api.example.com:443")).toEqual({ host: "api.example.com", port: 443 });
    expect(parseAuthority("[::1]:8443")).toEqual({ host: "[::1]", port: 8443 });
    for (const bad of [
      "api.example.com",
      "a/b:443",
      "api.example.com:0",
      "api.example.com:65536",
      ":443",
    ]) {
      expect(parseAuthority(bad), bad).toBeNull();
    }
  });
});

describe("innerTarget (inside an intercepted tunnel)", () => {
  const tunnel = { sandboxId: "sb", host: "api.example.com", port: 443, addresses: [] };
  const request = (url: string, host?: string) => {
    const req = new IncomingMessage(new net.Socket());
    req.url = url;
    if (host !== undefined) req.headers.host = host;
    return req;
  };

  it("takes the path of a request for the tunnel's host, by Host header or absolute URL", () => {
    expect(innerTarget(request("/v1?x=1", "API.example.com"), tunnel)).toEqual({
      ok: true,
      path: "/v1?x=1",
    });
    expect(innerTarget(request("/v1", "api.example.com:443"), tunnel)).toMatchObject({ ok: true });
    expect(innerTarget(request("https://api.example.com/v2"), tunnel)).toEqual({
      ok: true,
      path: "/v2",
    });
  });

  it("refuses (421) a request for another host or port: no domain fronting", () => {
    for (const [url, host] of [
      ["/", "other.example.com"],
      ["/", "api.example.com:8443"],
      ["https://other.example.com/", undefined],
    ] as const) {
      expect(innerTarget(request(url, host), tunnel), `${url} ${host}`).toMatchObject({
        ok: false,
        refusal: { status: 421, kind: "bad_request", host: "api.example.com" },
      });
    }
  });
});

describe("parseErrorRefusal", () => {
  const err = (code: string) => Object.assign(new Error(code), { code });

  it("answers 431 to a head too large, 408 to a slow one and 400 to anything malformed", () => {
    expect(parseErrorRefusal(err("HPE_HEADER_OVERFLOW"), "h", 1024)).toEqual({
      status: 431,
      kind: "bad_request",
      host: "h",
      reason: "the request head is larger than 1024 bytes",
    });
    expect(parseErrorRefusal(err("ERR_HTTP_REQUEST_TIMEOUT"), "", 1024)).toMatchObject({
      status: 408,
      reason: "the request was not received in time",
    });
    expect(parseErrorRefusal(err("HPE_INVALID_METHOD"), "", 1024)).toMatchObject({
      status: 400,
      reason: "malformed HTTP request (HPE_INVALID_METHOD)",
    });
  });
});
