import { CapabilityChoice, type RequestAnswer } from "@lobu/core";
import type { Logger } from "pino";
import type { AgentPackages } from "../agents/packages.ts";
import { userKeyOf } from "../domain/origin.ts";
import type { ActiveTurns } from "./active-turns.ts";
import type { RequestRegistry } from "./requests.ts";
import type { SandboxManager } from "./sandbox-manager.ts";

/** Forwards an answer to the worker waiting for it, if its sandbox runs here. */
export type DeliverAnswer = (
  sandboxId: string,
  requestId: string,
  answer: RequestAnswer,
) => unknown;

export interface PackageGrantDeps {
  requests: Pick<RequestRegistry, "get">;
  packages: Pick<AgentPackages, "install">;
  sandboxes: Pick<SandboxManager, "get">;
  /** The turn running on each sandbox: the install notices go into it. */
  turns: Pick<ActiveTurns, "stream">;
  log: Logger;
}

/**
 * A granted `package` request resolves when the package is ready: the gateway
 * hosting the sandbox (where the answer arrives over pub/sub) builds it into
 * the person's profile, shows the profile in the sandbox, and only then
 * forwards the grant, so the agent's next command finds the program on PATH.
 * Meanwhile the turn shows a notice; nothing else waits (other turns run on).
 * A package that cannot be built is forwarded as not granted, with the reason.
 * Every other answer is forwarded at once.
 */
export function deliverAfterPackages(
  deps: PackageGrantDeps,
  forward: DeliverAnswer,
): DeliverAnswer {
  return (sandboxId, requestId, answer) => {
    if (answer.choice !== CapabilityChoice.enum.granted || !deps.sandboxes.get(sandboxId)) {
      forward(sandboxId, requestId, answer);
      return;
    }
    void installThenForward(deps, forward, sandboxId, requestId, answer).catch((err) => {
      deps.log.error({ err, requestId }, "could not install a granted package");
      forward(sandboxId, requestId, {
        ...answer,
        choice: CapabilityChoice.enum.denied,
        text: "The package could not be installed because of an internal error.",
      });
    });
  };
}

async function installThenForward(
  deps: PackageGrantDeps,
  forward: DeliverAnswer,
  sandboxId: string,
  requestId: string,
  answer: RequestAnswer,
): Promise<void> {
  const request = await deps.requests.get(requestId);
  const event = request?.event;
  if (!request || event?.type !== "capability_request" || event.kind !== "package") {
    forward(sandboxId, requestId, answer);
    return;
  }
  const name = event.value;
  deps.turns.stream(sandboxId)?.emit({
    type: "notice",
    level: "info",
    text: `Installing ${name}… the agent continues when it is ready.`,
  });
  const owner = { agentId: request.agentId, userKey: userKeyOf(request.origin) };
  const state = await deps.packages.install(sandboxId, owner, name);
  if (state.state === "ready") {
    const version = state.version ? ` ${state.version}` : "";
    deps.turns.stream(sandboxId)?.emit({
      type: "notice",
      level: "info",
      text: `${name}${version} is installed.`,
    });
    forward(sandboxId, requestId, {
      ...answer,
      text: `Nix package ${name}${version} is installed and on PATH: run its programs by name.`,
    });
    return;
  }
  const reason = state.state === "failed" ? state.reason : `${name} is not ready`;
  deps.turns.stream(sandboxId)?.emit({
    type: "notice",
    level: "warn",
    text: `${name} could not be installed: ${reason}`,
  });
  forward(sandboxId, requestId, {
    ...answer,
    choice: CapabilityChoice.enum.denied,
    text: `the person granted it, but it could not be installed: ${reason}`,
  });
}
