import { describe, expect, it } from "vitest";
import { PublicUrl } from "../../src/http/public-url.ts";

describe("PublicUrl", () => {
  it("is empty until the server listens, then the configured URL", () => {
    const url = new PublicUrl("https://lobu.example.com/");
    expect(url.value).toBe("");
    url.listening("http://127.0.0.1:8080");
    expect(url.value).toBe("https://lobu.example.com");
  });

  it("is the listening address when none is configured", () => {
    const url = new PublicUrl(undefined);
    url.listening("http://127.0.0.1:41234");
    expect(url.value).toBe("http://127.0.0.1:41234");
  });
});
