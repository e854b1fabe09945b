/**
 * Wait for a long-lived promise (a running sandbox's `exited`) from short-lived
 * code (one turn) without leaving anything on it: `promise.then(fn)` keeps `fn`,
 * and all `fn` reaches (the turn's stream, context, lease), until the promise
 * settles, i.e. for as long as the sandbox runs, one per turn. Here the promise
 * gets one reaction, however many waiters come and go, and a waiter that
 * unsubscribes is let go at once.
 */
type Waiter = (value: unknown) => void;
const waiters = new WeakMap<Promise<unknown>, Set<Waiter>>();

/**
 * The waiters of `promise`, with its one reaction. A function of its own: a
 * closure made in `whenFulfilled` would share its scope, and so keep the first
 * waiter alive for as long as the promise is pending.
 */
function waitersOf(promise: Promise<unknown>): Set<Waiter> {
  const existing = waiters.get(promise);
  if (existing) return existing;
  const set = new Set<Waiter>();
  waiters.set(promise, set);
  // Once settled, a later waiter gets a reaction of its own (which runs at once).
  const done = () => {
    if (waiters.get(promise) === set) waiters.delete(promise);
  };
  promise.then(
    (value) => {
      done();
      for (const waiter of [...set]) waiter(value);
      set.clear();
    },
    // Whoever owns the promise handles its failure; a waiter only waits for the value.
    () => {
      done();
      set.clear();
    },
  );
  return set;
}

/** Call `fn` when `promise` fulfils (never on rejection); returns the unsubscribe. */
export function whenFulfilled<T>(promise: Promise<T>, fn: (value: T) => void): () => void {
  const set = waitersOf(promise);
  const waiter = fn as Waiter;
  set.add(waiter);
  return () => {
    set.delete(waiter);
  };
}
