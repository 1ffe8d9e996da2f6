/**
 * The call state machine as a table. Live states move forward only; the one
 * loop allowed is speaking <-> listening. Any live state may end in any
 * terminal state; a terminal state is final.
 */
import { TERMINAL_STATES, type CallState, type LiveState, type TerminalState } from "./types.js";

const RANK: Record<LiveState, number> = {
  initiated: 0,
  ringing: 1,
  answered: 2,
  active: 3,
  speaking: 4,
  listening: 4,
};

const TERMINAL = new Set<CallState>(TERMINAL_STATES);

export function isTerminal(state: CallState): state is TerminalState {
  return TERMINAL.has(state);
}

export function canTransition(from: CallState, to: CallState): boolean {
  if (isTerminal(from)) return false;
  if (isTerminal(to)) return true;
  const a = RANK[from as LiveState];
  const b = RANK[to as LiveState];
  if (from === to) return false;
  // speaking <-> listening share a rank: the only sideways move allowed.
  return b > a || (a === 4 && b === 4);
}

/** True once the far end has picked up (or the call ended after that). */
export function isAnsweredState(state: CallState): boolean {
  return !isTerminal(state) && RANK[state as LiveState] >= RANK.answered;
}
