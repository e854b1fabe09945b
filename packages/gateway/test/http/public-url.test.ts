import { describe, expect, it } from "vitest";
import { PublicUrl } from "../../src/http/public-url.ts";

describe("PublicUrl", () => {
  it("is the configured URL from the start; the listening address does not replace it", () => {
    const url = new PublicUrl("https://lobu.example.com/");
    expect(url.value).toBe("https://lobu.example.com");
    expect(url.https).toBe(true);
    url.listening("http://127.0.0.1:8080");
    expect(url.value).toBe("https://lobu.example.com");
  });

  it("is the listening address when none is configured, and empty before", () => {
    const url = new PublicUrl(undefined);
    expect(url.configured).toBe(false);
    expect(url.value).toBe("");
    url.listening("http://127.0.0.1:41234");
    expect(url.value).toBe("http://127.0.0.1:41234");
    expect(url.https).toBe(false);
  });
});
