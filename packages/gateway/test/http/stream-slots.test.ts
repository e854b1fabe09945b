import { describe, expect, it } from "vitest";
import { clientAddress, StreamSlots } from "../../src/http/stream-slots.ts";

/**
 * The per-address cap on event streams must not be escaped by changing
 * address within what one host holds: an IPv6 host is routinely given a whole
 * /64 and can send from any of its 2^64 addresses. The caps against a real
 * gateway and store are in test/api/streams.test.ts.
 */

const from = (remoteAddress: string) => ({ env: { incoming: { socket: { remoteAddress } } } });

describe("clientAddress", () => {
  it("counts every IPv6 address of one /64 as one client", () => {
    const a = clientAddress(from("2001:db8:aa:1::1"));
    expect(a).toBe("2001:db8:aa:1::/64");
    expect(clientAddress(from("2001:0db8:00aa:0001:ffff:1234:5678:9abc"))).toBe(a);
    expect(clientAddress(from("2001:db8:aa:1:0:0:0:2%eth0"))).toBe(a);
    expect(clientAddress(from("2001:db8:aa:2::1"))).not.toBe(a);
  });

  it("keeps IPv4 addresses (also IPv4-mapped ones) as they are", () => {
    expect(clientAddress(from("10.0.0.7"))).toBe("10.0.0.7");
    expect(clientAddress(from("::ffff:10.0.0.7"))).toBe("10.0.0.7");
    expect(clientAddress({ env: {} })).toBe("unknown");
  });

  it("one /64 cannot open more than the address cap by rotating addresses", () => {
    const slots = new StreamSlots({ perToken: 1000, perAddress: 3 });
    const results: string[] = [];
    for (let i = 1; i <= 5; i++) {
      const holder = { tokenId: `tok_${i}`, address: clientAddress(from(`2001:db8:aa:1::${i}`)) };
      try {
        slots.acquire(holder);
        results.push("open");
      } catch (err) {
        results.push((err as { code?: string }).code ?? "error");
      }
    }
    expect(results).toEqual(["open", "open", "open", "too_many_streams", "too_many_streams"]);
  });
});
