import { once } from "node:events";
import net from "node:net";
import { describe, expect, it } from "vitest";
import { TunnelSlots } from "../../src/proxy/connections.ts";

/** The per-sandbox limit on open tunnels and upgraded connections. */

describe("TunnelSlots", () => {
  it("holds up to the limit per sandbox and frees a slot when its socket closes", async () => {
    const slots = new TunnelSlots(2);
    const a = new net.Socket();
    const b = new net.Socket();
    expect(slots.hold("sb", a)).not.toBeNull();
    expect(slots.hold("sb", b)).not.toBeNull();
    expect(slots.hold("sb", new net.Socket())).toBeNull();
    expect(slots.hold("other", new net.Socket())).not.toBeNull();
    expect(slots.limitRefusal("sb", "api.example.com", "helper")).toEqual({
      status: 429,
      kind: "limit",
      host: "api.example.com",
      reason: "this sandbox already has 2 open tunnels and upgraded connections (limit 2)",
      agentId: "helper",
    });
    a.destroy();
    await once(a, "close");
    expect(slots.hold("sb", new net.Socket())).not.toBeNull();
  });

  it("releases once however often it is called, and at once for a client already gone", () => {
    const slots = new TunnelSlots(2);
    const release = slots.hold("sb", new net.Socket())!;
    expect(slots.hold("sb", new net.Socket())).not.toBeNull();
    release();
    release();
    const gone = new net.Socket();
    gone.destroy();
    expect(slots.hold("sb", gone)).not.toBeNull();
    expect(slots.hold("sb", new net.Socket())).not.toBeNull();
    expect(slots.hold("sb", new net.Socket())).toBeNull();
  });
});
