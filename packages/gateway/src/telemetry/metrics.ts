import { type Attributes, type Meter, metrics } from "@opentelemetry/api";

/**
 * The gateway's metrics (exported over OTLP with the traces; see
 * docs/observability.md for the list). Instruments are made on first use from
 * the global meter provider: startTelemetry() sets it before anything records,
 * and without it every instrument is a no-op.
 */
function create(meter: Meter) {
  const seconds = { unit: "s" };
  return {
    turns: meter.createCounter("lobu.turns", {
      description: "Turns (attempts at answering a message) by agent, platform and result",
    }),
    turnDuration: meter.createHistogram("lobu.turn.duration", {
      ...seconds,
      description: "How long a turn took, from its claim to its end",
    }),
    queueWait: meter.createHistogram("lobu.queue.wait", {
      ...seconds,
      description: "How long a message waited in the queue before its turn began (its age)",
    }),
    wake: meter.createHistogram("lobu.sandbox.wake.duration", {
      ...seconds,
      description: "How long a cold wake of a sandbox took",
    }),
    egress: meter.createCounter("lobu.egress.decisions", {
      description: "Egress proxy decisions by decision (allowed, denied, swapped, tunnel, …)",
    }),
    tokens: meter.createCounter("lobu.llm.tokens", {
      unit: "{token}",
      description: "Model tokens metered by the relay, by provider, model and type",
    }),
    cost: meter.createCounter("lobu.llm.cost", {
      unit: "USD",
      description: "Estimated model cost (from [prices]; unpriced models add nothing)",
    }),
    errors: meter.createCounter("lobu.errors", {
      description: "Turn failures by error code",
    }),
    meter,
  };
}

let instruments: ReturnType<typeof create> | undefined;

/** The instruments, from the meter provider set now. */
export function gatewayMetrics(): ReturnType<typeof create> {
  instruments ??= create(metrics.getMeter("lobu-gateway", "0.1.0"));
  return instruments;
}

/** Forget the instruments: the next use makes them from the meter provider just set. */
export function resetGatewayMetrics(): void {
  instruments = undefined;
}

/** What the gauges read when metrics are collected. */
export interface GaugeSources {
  /** Messages waiting in the queue (every gateway's, when the store is shared). */
  queueDepth(): Promise<number>;
  /** This gateway's sandboxes by state. */
  sandboxesByState(): Promise<Record<string, number>>;
}

/** Observe queue depth and sandboxes by state at each collection; returns the unregister function. */
export function observeGauges(sources: GaugeSources, onError: (err: unknown) => void): () => void {
  const { meter } = gatewayMetrics();
  const depth = meter.createObservableGauge("lobu.queue.depth", {
    description: "Messages waiting in the queue",
  });
  const sandboxes = meter.createObservableGauge("lobu.sandboxes", {
    description: "This gateway's sandboxes by state",
  });
  const callback = async (result: {
    observe(o: typeof depth | typeof sandboxes, v: number, a?: Attributes): void;
  }) => {
    try {
      result.observe(depth, await sources.queueDepth());
      for (const [state, n] of Object.entries(await sources.sandboxesByState()))
        result.observe(sandboxes, n, { "lobu.state": state });
    } catch (err) {
      onError(err);
    }
  };
  meter.addBatchObservableCallback(callback, [depth, sandboxes]);
  return () => meter.removeBatchObservableCallback(callback, [depth, sandboxes]);
}
