import { describe, expect, it } from "vitest";
import { canTransition, isTerminal } from "../src/calls/state.js";
import { LIVE_STATES, TERMINAL_STATES, type CallState } from "../src/calls/types.js";

const allowed: Array<[CallState, CallState]> = [
  ["initiated", "ringing"],
  ["initiated", "answered"],
  ["ringing", "answered"],
  ["answered", "speaking"],
  ["answered", "listening"],
  ["active", "speaking"],
  ["speaking", "listening"],
  ["listening", "speaking"],
];
const refused: Array<[CallState, CallState]> = [
  ["ringing", "initiated"],
  ["answered", "ringing"],
  ["speaking", "answered"],
  ["listening", "active"],
  ["speaking", "speaking"],
  ["completed", "ringing"],
  ["hangup-user", "hangup-bot"],
];

describe("call state machine", () => {
  it.each(allowed)("allows %s -> %s", (from, to) => expect(canTransition(from, to)).toBe(true));
  it.each(refused)("refuses %s -> %s", (from, to) => expect(canTransition(from, to)).toBe(false));

  it("lets every live state end in every terminal state, and nothing leave a terminal one", () => {
    for (const live of LIVE_STATES) for (const end of TERMINAL_STATES) expect(canTransition(live, end)).toBe(true);
    for (const end of TERMINAL_STATES) {
      expect(isTerminal(end)).toBe(true);
      for (const any of [...LIVE_STATES, ...TERMINAL_STATES]) expect(canTransition(end, any)).toBe(false);
    }
    for (const live of LIVE_STATES) expect(isTerminal(live)).toBe(false);
  });
});
