import { afterEach, expect, it, vi } from "vitest";
import { onLauncherExit } from "../src/commands/run.ts";

afterEach(() => {
  vi.useRealTimers();
});

it("stops the gateway once when npm goes away, so the clean shutdown is not cut short", () => {
  vi.useFakeTimers();
  let parent = 100;
  const stop = vi.fn();
  onLauncherExit(stop, () => parent, 500);
  vi.advanceTimersByTime(2000);
  expect(stop).not.toHaveBeenCalled();
  parent = 1; // npm's shell died: the gateway was handed to init
  vi.advanceTimersByTime(500);
  expect(stop).toHaveBeenCalledTimes(1);
  // A second call would be taken as a second signal ("forced exit") mid-shutdown.
  vi.advanceTimersByTime(10_000);
  expect(stop).toHaveBeenCalledTimes(1);
});
