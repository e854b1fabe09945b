import v8 from "node:v8";
import vm from "node:vm";

/**
 * What is still reachable: `WeakRef`s to `targets` after a full collection of
 * V8's own (exposed for the call). WeakRefs keep their targets until the job
 * that made them ends, so the collection waits for the next turn first.
 */
export async function stillReachable<T extends object>(targets: WeakRef<T>[]): Promise<T[]> {
  await new Promise((r) => setTimeout(r, 0));
  v8.setFlagsFromString("--expose-gc");
  (vm.runInNewContext("gc") as () => void)();
  return targets.map((r) => r.deref()).filter((t): t is T => t !== undefined);
}
