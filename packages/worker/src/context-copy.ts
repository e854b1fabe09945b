import type { AgentSession } from "@earendil-works/pi-coding-agent";

/**
 * Before every model call pi deep-copies the whole conversation (structuredClone)
 * so that `context` extension handlers may edit it. Lobu installs no extension,
 * so the copy is pure cost, and it grows with the transcript: profiled, it was
 * the pool's largest item per model call. With no handler listening, the
 * messages go to the request as they are (pi's request builders make their own
 * objects and never write to them); an extension that does listen still gets
 * pi's copy.
 */
export function skipUnobservedContextCopy(session: AgentSession): void {
  const runner = session.extensionRunner;
  const copying = runner.emitContext.bind(runner);
  runner.emitContext = (messages) =>
    runner.hasHandlers("context") || runner.hasHandlers("context_with_system")
      ? copying(messages)
      : Promise.resolve(messages);
}
