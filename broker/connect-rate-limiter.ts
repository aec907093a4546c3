/**
 * CONNECT rate limit per remote address: a token bucket holding `perMinute` attempts that refills at
 * `perMinute` per minute. A burst up to the limit passes (a site coming back after a broker restart),
 * a reconnect loop or a password-guessing client is held to the steady rate.
 */

const MINUTE_MS = 60_000;

/** Options of {@link ConnectRateLimiter}. */
export interface ConnectRateLimiterOptions {
  /** Attempts allowed per key per minute; 0 turns the limiter off. */
  perMinute: number;
  /** Clock, injectable for tests. */
  now?: () => number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/** Counts CONNECT attempts per key (a remote address) and says whether one more may proceed. */
export class ConnectRateLimiter {
  readonly #perMinute: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();
  #lastSweepAt: number;

  constructor(options: ConnectRateLimiterOptions) {
    if (!Number.isFinite(options.perMinute) || options.perMinute < 0) {
      throw new RangeError(`connectRatePerMinute must be a number >= 0, got ${options.perMinute}`);
    }
    this.#perMinute = options.perMinute;
    this.#now = options.now ?? Date.now;
    this.#lastSweepAt = this.#now();
  }

  /** Takes one attempt for `key`; false when its budget is spent. */
  take(key: string): boolean {
    if (this.#perMinute === 0) return true;
    const now = this.#now();
    this.#sweep(now);
    const bucket = this.#buckets.get(key) ?? { tokens: this.#perMinute, updatedAt: now };
    const refilled = ((now - bucket.updatedAt) * this.#perMinute) / MINUTE_MS;
    bucket.tokens = Math.min(this.#perMinute, bucket.tokens + refilled);
    bucket.updatedAt = now;
    this.#buckets.set(key, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Keys tracked now (for tests and metrics). */
  get size(): number {
    return this.#buckets.size;
  }

  /** A bucket untouched for a minute is full again and can be forgotten: keeps memory bounded. */
  #sweep(now: number): void {
    if (now - this.#lastSweepAt < MINUTE_MS) return;
    this.#lastSweepAt = now;
    for (const [key, bucket] of this.#buckets) {
      if (now - bucket.updatedAt >= MINUTE_MS) this.#buckets.delete(key);
    }
  }
}
