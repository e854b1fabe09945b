/**
 * Wait for a long-lived promise (a running sandbox's `exited`) from short-lived
 * code (one turn) without leaving anything on it: `promise.then(fn)` keeps `fn`,
 * and all `fn` reaches (the turn's stream, context, lease), until the promise
 * settles, i.e. for as long as the sandbox runs, one per turn. Here the promise
 * gets one reaction, however many waiters come and go, and a waiter that
 * unsubscribes is let go at once.
 */
const waiters = new WeakMap<Promise<unknown>, Set<(value: unknown) => void>>();

/** Call `fn` when `promise` fulfils (never on rejection); returns the unsubscribe. */
export function whenFulfilled<T>(promise: Promise<T>, fn: (value: T) => void): () => void {
  let set = waiters.get(promise);
  if (!set) {
    const fresh = new Set<(value: unknown) => void>();
    waiters.set(promise, fresh);
    // Once settled, a later waiter gets a reaction of its own (which runs at once).
    const done = () => {
      if (waiters.get(promise) === fresh) waiters.delete(promise);
    };
    promise.then(
      (value) => {
        done();
        for (const waiter of [...fresh]) waiter(value);
        fresh.clear();
      },
      // Whoever owns the promise handles its failure; a waiter only waits for the value.
      () => {
        done();
        fresh.clear();
      },
    );
    set = fresh;
  }
  const waiter = fn as (value: unknown) => void;
  set.add(waiter);
  return () => {
    set.delete(waiter);
  };
}
