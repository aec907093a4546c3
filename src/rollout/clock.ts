/**
 * The rollout's notion of time: what time it is, and a timer. Injected, so tests can run maintenance
 * windows, start times and per-minute limits on a fake clock.
 */

/** An opaque timer handle. */
export type ClockTimer = { readonly id: unknown };

export interface Clock {
  now(): number;
  /** Calls `fn` once `ms` have passed on this clock. */
  setTimeout(fn: () => void, ms: number): ClockTimer;
  clearTimeout(timer: ClockTimer): void;
}

/** Wall-clock time and Node timers (unref'd: a pending rollout timer never keeps a process alive). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    // Node fires at once for delays above 2^31-1 ms; the controller re-arms after a long wait anyway.
    const t = setTimeout(fn, Math.min(2_147_483_647, Math.max(0, ms)));
    t.unref();
    return { id: t };
  },
  clearTimeout(timer) {
    clearTimeout(timer.id as NodeJS.Timeout);
  },
};
