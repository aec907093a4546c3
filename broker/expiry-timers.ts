/**
 * One timer per key that fires at an absolute time: the broker uses it to close a browser's connection
 * when its token expires.
 */

/**
 * Node clamps a longer delay to 1 ms (with a TimeoutOverflowWarning), which would close a connection
 * holding a token valid for more than ~24.8 days at once; longer waits are chained instead.
 */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** Timers keyed by object (a client), each firing once at its deadline unless cleared first. */
export class ExpiryTimers<K extends object> {
  readonly #timers = new Map<K, NodeJS.Timeout>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /**
   * Calls `onExpire` once `expiresAt` (epoch ms) has passed; replaces any timer already set for `key`.
   * Never calls it synchronously, even for a deadline already past.
   */
  arm(key: K, expiresAt: number, onExpire: () => void): void {
    this.clear(key);
    const schedule = (delay: number) => {
      const timer = setTimeout(
        () => {
          const remaining = expiresAt - this.#now();
          if (remaining > 0) return schedule(remaining);
          this.#timers.delete(key);
          onExpire();
        },
        Math.min(Math.max(delay, 0), MAX_TIMER_DELAY_MS),
      );
      // A pending expiry must not keep the process alive on its own.
      timer.unref();
      this.#timers.set(key, timer);
    };
    schedule(expiresAt - this.#now());
  }

  clear(key: K): void {
    const timer = this.#timers.get(key);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.#timers.delete(key);
  }

  clearAll(): void {
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }

  get size(): number {
    return this.#timers.size;
  }
}
