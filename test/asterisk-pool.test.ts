/** Several Asterisks behind one carrier: which Asterisk a call goes to, and how a call's id names it. */
import { describe, expect, it } from "vitest";
import { AsteriskPool, type PoolMember } from "../src/providers/asterisk/servers.js";
import type { ProviderEvent, ProviderEventSink } from "../src/providers/types.js";

/** An Asterisk's provider as the pool sees it: connected or not, with so many calls, recording what it is asked. */
function member(ariConnected: boolean, liveCalls: number): PoolMember & { asked: string[]; sink?: ProviderEventSink } {
  const asked: string[] = [];
  const m = {
    id: "asterisk" as const,
    capabilities: { inbound: true, dtmfOut: true, e164Only: false, turnTokens: true, warmTransfer: true },
    ariConnected,
    liveCalls,
    asked,
    sink: undefined as ProviderEventSink | undefined,
    async start(sink: ProviderEventSink) {
      m.sink = sink;
    },
    async stop() {},
    async placeCall() {
      asked.push("place");
      return { providerCallId: `ch-${asked.length}` };
    },
    async answer(id: string) {
      asked.push(`answer ${id}`);
    },
    async reject() {},
    async hangup(id: string) {
      asked.push(`hangup ${id}`);
    },
    async speak() {
      return { interrupted: false } as never;
    },
    async listen() {},
    async sendDtmf() {},
    async getCallStatus(id: string) {
      asked.push(`status ${id}`);
      return { status: "active" as const };
    },
  };
  return m;
}

describe("AsteriskPool", () => {
  it("places a call on the connected Asterisk with the fewest calls, and names it in the call's id", async () => {
    const busy = member(true, 5);
    const idle = member(true, 1);
    const down = member(false, 0);
    const pool = new AsteriskPool([{ name: "ast1", provider: busy }, { name: "ast2", provider: down }, { name: "ast3", provider: idle }]);
    expect(await pool.placeCall({ callId: "c1", to: "6001" })).toEqual({ providerCallId: "ast3/ch-1" });
    expect([busy.asked, down.asked]).toEqual([[], []]);
  });

  it("sends each method to the Asterisk a call's id names, with the id that Asterisk knows; an id without a name is the first one's", async () => {
    const first = member(true, 0);
    const second = member(true, 0);
    const pool = new AsteriskPool([{ name: "ast1", provider: first }, { name: "ast2", provider: second }]);
    await pool.hangup("ast2/1701.5");
    await pool.getCallStatus("1699.2");
    expect(second.asked).toEqual(["hangup 1701.5"]);
    expect(first.asked).toEqual(["status 1699.2"]);
    await expect(pool.answer("ast9/1.1")).rejects.toMatchObject({ code: "NOT_FOUND", message: expect.stringContaining("ast9") });
  });

  it("passes on each Asterisk's events with the call's id naming it", async () => {
    const first = member(true, 0);
    const second = member(true, 0);
    const pool = new AsteriskPool([{ name: "ast1", provider: first }, { name: "ast2", provider: second }]);
    const seen: ProviderEvent[] = [];
    await pool.start((e) => seen.push(e));
    second.sink!({ type: "inbound", from: "6001", to: "700", eventId: "e1", providerCallId: "1701.5", at: 1 });
    first.sink!({ type: "answered", eventId: "e2", providerCallId: "1701.5", at: 2 });
    expect(seen.map((e) => `${e.type} ${e.providerCallId}`)).toEqual(["inbound ast2/1701.5", "answered ast1/1701.5"]);
  });
});
