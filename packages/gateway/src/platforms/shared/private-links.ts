import type { AgentEvent } from "@lobu/core";

export type CapabilityRequest = Extract<AgentEvent, { type: "capability_request" }>;

/**
 * A capability request's settings link carries a single-use claim code:
 * whoever opens it first gets a session as the person who was asked. In a
 * conversation others can read (a channel, a group) the card everyone sees
 * must not carry it. This passes a turn's events on with the link taken off
 * capability requests, and hands each such request to `sendPrivately`, which
 * delivers the link to the person alone (an ephemeral message, a private
 * chat). `sendPrivately` must not throw (run it in the background).
 */
export async function* withoutPublicLinks(
  events: AsyncIterable<AgentEvent>,
  sendPrivately: (request: CapabilityRequest) => void,
): AsyncIterable<AgentEvent> {
  for await (const event of events) {
    if (event.type !== "capability_request") {
      yield event;
      continue;
    }
    sendPrivately(event);
    const { url: _link, ...card } = event;
    yield card;
  }
}
