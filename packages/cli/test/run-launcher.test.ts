import { afterEach, expect, it, vi } from "vitest";
import { onLauncherExit, stopRequests } from "../src/commands/run.ts";

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

it("takes a stop request repeated within the window as the same one, and a later one as forcing", () => {
  let now = 1_000;
  const request = stopRequests(2_000, () => now);
  expect(request()).toBe("stop");
  now += 5; // the process group's signal, then npm's forward of it
  expect(request()).toBe("repeat");
  now += 1_990;
  expect(request()).toBe("repeat");
  now += 5; // a person pressing Ctrl-C again
  expect(request()).toBe("force");
  expect(request()).toBe("force");
});
