/**
 * In-memory limit on failed bearer-token attempts per client address: a fixed window per address.
 * Only wrong tokens count (a missing token guesses nothing). While an address is over the limit even
 * a correct token is refused, otherwise a guesser would learn from the answer that it had hit.
 * Per process: behind several API instances the effective limit is the sum, which is still enough to
 * make guessing a 16+ character token hopeless.
 */

export interface FailedAuthLimitOptions {
  /** Failed attempts allowed per address per window. */
  maxFailures: number;
  windowMs: number;
  /** Addresses tracked before expired entries are swept: bounds memory under a spray of addresses. */
  maxTracked: number;
  now: () => number;
}

export const DEFAULT_FAILED_AUTH_LIMIT: FailedAuthLimitOptions = {
  maxFailures: 20,
  windowMs: 60_000,
  maxTracked: 10_000,
  now: Date.now,
};

interface Window {
  startedAt: number;
  failures: number;
}

export class FailedAuthLimiter {
  private readonly windows = new Map<string, Window>();
  private readonly opts: FailedAuthLimitOptions;

  constructor(options: Partial<FailedAuthLimitOptions> = {}) {
    this.opts = { ...DEFAULT_FAILED_AUTH_LIMIT, ...options };
    if (this.opts.maxFailures < 1 || this.opts.windowMs < 1)
      throw new Error('FailedAuthLimiter: maxFailures and windowMs must be positive');
  }

  /** Milliseconds until `address` may try again, or 0 when it may try now. */
  blockedForMs(address: string): number {
    const w = this.current(address);
    if (!w || w.failures < this.opts.maxFailures) return 0;
    return w.startedAt + this.opts.windowMs - this.opts.now();
  }

  recordFailure(address: string): void {
    const w = this.current(address);
    if (w) {
      w.failures++;
      return;
    }
    if (this.windows.size >= this.opts.maxTracked) this.sweep();
    this.windows.set(address, { startedAt: this.opts.now(), failures: 1 });
  }

  private current(address: string): Window | null {
    const w = this.windows.get(address);
    if (!w) return null;
    if (this.opts.now() - w.startedAt >= this.opts.windowMs) {
      this.windows.delete(address);
      return null;
    }
    return w;
  }

  /** Drops expired windows; if every window is live, drops the oldest so the map stays bounded. */
  private sweep(): void {
    const now = this.opts.now();
    for (const [address, w] of this.windows) {
      if (now - w.startedAt >= this.opts.windowMs) this.windows.delete(address);
    }
    if (this.windows.size >= this.opts.maxTracked) {
      const oldest = this.windows.keys().next();
      if (!oldest.done) this.windows.delete(oldest.value);
    }
  }
}
