/**
 * How many executions one worker process lets through their start at once: from taking the queue job
 * to the device accepting the install (or the execution ending, stopping or going back to the queue
 * before that). The rest wait here in arrival order, holding no device lock and sending nothing.
 *
 * A start is the costly burst of an update: the lock, the preflight and install round trips, and right
 * after the acceptance the device's download with its quick run of progress reports. Released all at
 * once (a rollout's 1,000 in flight, a job of 10,000), those bursts queued in front of the status of
 * every update already running. Through the window starts follow at the pace the service completes
 * them (a slot frees when its device accepts, so a loaded service starts fewer a second) and the
 * status of running updates keeps flowing. Measured in the README's Performance section.
 */

import { onAbort } from '../abort-listeners.js';

/**
 * A start holds its slot this long at most. A device that takes longer to accept (a cellular link of
 * a second per round trip, a site that does not answer and is asked again until the preflight
 * timeout) costs the service almost nothing while it takes its time; held to the end, a few such
 * devices would hold every slot and stall the rollout. So the window paces only quick starts, the
 * ones that cost, and never starts fewer than `size` a second.
 */
export const MAX_START_HOLD_MS = 1000;

/** The release of a start that holds no slot (no window, a hand-over, an execution that needs no start). */
export function noSlot(): void {}

export class StartWindow {
  private inUse = 0;
  private readonly queue: (() => void)[] = [];

  /**
   * @param size starts at once; 0 lets every execution start at once (no window).
   * @param maxHoldMs a start holds its slot this long at most: see {@link MAX_START_HOLD_MS}.
   */
  constructor(
    readonly size: number,
    readonly maxHoldMs = MAX_START_HOLD_MS,
  ) {
    if (!Number.isInteger(size) || size < 0)
      throw new RangeError(`start window must be an integer ≥ 0, got ${size}`);
  }

  /** Executions in their start right now. */
  get starting(): number {
    return this.inUse;
  }

  /** Executions waiting for a slot. */
  get waiting(): number {
    return this.queue.length;
  }

  /** The function that gives a free slot back (idempotent), or null when none is free now. */
  tryAcquire(): (() => void) | null {
    if (this.size === 0) return noSlot;
    if (this.inUse >= this.size) return null;
    this.inUse++;
    return this.releaser();
  }

  /**
   * Resolves with the function that gives the slot back (idempotent) once one is free, in arrival
   * order. When `signal` aborts first (the worker hands its executions over), resolves at once with a
   * release that does nothing: the caller goes on and sees the abort.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    const now = this.tryAcquire();
    if (now) return Promise.resolve(now);
    if (signal?.aborted) return Promise.resolve(noSlot);
    return new Promise((resolve) => {
      const grant = () => {
        forget();
        resolve(this.releaser());
      };
      const forget = onAbort(signal, () => {
        const i = this.queue.indexOf(grant);
        if (i >= 0) this.queue.splice(i, 1);
        resolve(noSlot);
      });
      this.queue.push(grant);
    });
  }

  /** A slot's release, also due after maxHoldMs: hands the slot straight to the next waiter, or frees it. */
  private releaser(): () => void {
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      clearTimeout(timer);
      const next = this.queue.shift();
      if (next) next();
      else this.inUse--;
    };
    const timer = setTimeout(release, this.maxHoldMs);
    timer.unref();
    return release;
  }
}
