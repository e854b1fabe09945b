import { relative } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT, screenshotPath } from "./browser.ts";

describe("browser test screenshots", () => {
  // `npm run screenshots` sets LOBU_SCREENSHOTS_DIR=docs/images to refresh them on purpose.
  it.skipIf(Boolean(process.env.LOBU_SCREENSHOTS_DIR))(
    "go to a temporary directory, never into the work tree",
    () => {
      const path = screenshotPath("settings-desktop.png");
      expect(relative(REPO_ROOT, path).startsWith("..")).toBe(true);
    },
  );
});
