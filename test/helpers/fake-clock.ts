/**
 * A clock that moves only when the test says so: `advance` and `set` fire the timers that fall due,
 * in due order. For maintenance windows, start times and per-minute limits without waiting.
 */
import type { Clock, ClockTimer } from '../../src/rollout/clock.js';

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly pending = new Map<ClockTimer, Pending>();

  constructor(start: number | string) {
    this.t = typeof start === 'string' ? Date.parse(start) : start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): ClockTimer {
    const timer: ClockTimer = { id: ++this.seq };
    this.pending.set(timer, { at: this.t + Math.max(0, ms), seq: this.seq, fn });
    return timer;
  }

  clearTimeout(timer: ClockTimer): void {
    this.pending.delete(timer);
  }

  /** Moves the clock forward by `ms`, firing every timer that falls due on the way. */
  advance(ms: number): void {
    this.set(this.t + ms);
  }

  /** Moves the clock to `at` (never backwards), firing every timer due by then. */
  set(at: number | string): void {
    const target = typeof at === 'string' ? Date.parse(at) : at;
    if (target < this.t) throw new RangeError('a fake clock does not go backwards');
    for (;;) {
      let next: [ClockTimer, Pending] | null = null;
      for (const entry of this.pending) {
        if (
          entry[1].at <= target &&
          (!next || entry[1].at < next[1].at || (entry[1].at === next[1].at && entry[1].seq < next[1].seq))
        )
          next = entry;
      }
      if (!next) break;
      this.pending.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
    this.t = target;
  }

  /** Timers not yet fired. */
  pendingTimers(): number {
    return this.pending.size;
  }
}
