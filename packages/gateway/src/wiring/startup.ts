/**
 * What every startup phase gets from startGateway: a way to report a long
 * step (it is also where an aborted start stops) and to register what undoes
 * its work, so a start that fails or is aborted closes everything it opened
 * again, in reverse order.
 */
export interface Startup {
  progress(step: string): void;
  onFailure(undo: () => unknown): void;
}
