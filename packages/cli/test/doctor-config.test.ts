import { parseConfig } from "@lobu/core";
import { afterEach, describe, expect, it, vi } from "vitest";
import { platformsCheck } from "../src/commands/doctor.ts";

afterEach(() => {
  vi.unstubAllEnvs();
});

describe("doctor's platform check", () => {
  it("refuses what `lobu run` refuses: an unknown platform, an unknown key, a bad token", () => {
    const unknown = platformsCheck(parseConfig("[platforms.telgram]\n"));
    expect(unknown).toMatchObject([{ level: "fail" }]);
    expect(unknown[0]!.detail).toMatch(
      /\[platforms\.telgram\] is not a platform this gateway knows/,
    );
    expect(unknown[0]!.detail).toMatch(/Supported: .*\[platforms\.telegram\]/);

    const typo = platformsCheck(parseConfig('[platforms.telegram]\nmdoe = "polling"\n'));
    expect(typo[0]!.detail).toMatch(/unknown key "mdoe" in \[platforms\.telegram\]/);

    vi.stubEnv("TELEGRAM_BOT_TOKEN", "not-a-token");
    expect(platformsCheck(parseConfig(""))[0]).toMatchObject({
      level: "fail",
      detail: expect.stringMatching(/TELEGRAM_BOT_TOKEN does not look like a bot token/),
    });
  });

  it("names the platforms set up, or says only the REST API is", () => {
    for (const name of ["TELEGRAM_BOT_TOKEN", "SLACK_BOT_TOKEN", "DISCORD_BOT_TOKEN"])
      vi.stubEnv(name, "");
    expect(platformsCheck(parseConfig(""))).toMatchObject([
      { level: "ok", title: "platforms: none, REST API only" },
    ]);
    vi.stubEnv("TELEGRAM_BOT_TOKEN", `123456789:${"A".repeat(35)}`);
    expect(platformsCheck(parseConfig(""))).toMatchObject([
      { level: "ok", title: "platforms: telegram" },
    ]);
  });
});
