import type { PlaceholderBinding, PlaceholderLookup } from "../secrets/placeholders.ts";
import type { TurnRegistry } from "./active-turns.ts";

/**
 * "A person's credentials, domains and model key act only on that person's own
 * turns; outside a running turn a sandbox's placeholders are inert."
 *
 * The placeholder lookup the egress proxy and the LLM relay use, filtered by the
 * turn running on the placeholder's sandbox: no turn running, no binding; a
 * turn-bound placeholder only while its own turn runs. Everything the worker
 * holds is readable by the agent (its memory included), so a placeholder dug
 * out of it, kept in a file by an earlier turn, or used by a background process
 * after the turn ended buys nothing.
 */
export function admitsBinding(binding: PlaceholderBinding, turns: TurnRegistry): boolean {
  const running = turns.current(binding.sandboxId);
  if (!running) return false;
  if (!binding.turn) return true;
  return binding.turn.turnId === running.turnId && binding.turn.userKey === running.userKey;
}

export function turnGatedPlaceholders(
  inner: PlaceholderLookup,
  turns: TurnRegistry,
  opts: {
    /**
     * The sandbox whose egress endpoint asks, when the endpoint serves only one.
     * Another sandbox's binding is then passed through unfiltered: the proxy
     * refuses it itself and says why ("issued to another sandbox").
     */
    requester?: string;
  } = {},
): PlaceholderLookup {
  return {
    async lookup(placeholder) {
      const binding = await inner.lookup(placeholder);
      if (!binding) return null;
      if (opts.requester !== undefined && binding.sandboxId !== opts.requester) return binding;
      return admitsBinding(binding, turns) ? binding : null;
    },
    async forSandbox(sandboxId) {
      if (!turns.current(sandboxId)) return [];
      return (await inner.forSandbox(sandboxId)).filter((b) => admitsBinding(b, turns));
    },
  };
}
