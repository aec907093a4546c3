/**
 * A housekeeping pass that one process of a deployment makes per interval, however many run: each
 * process ticks every interval, and the first to claim that interval in Redis (a key set with NX and
 * the interval as its expiry) makes the pass. A pass asked for while one runs joins it. Used by the
 * retained-record expiry and the job retention, whose passes are safe to overlap anyway (each step
 * checks again), so the claim only keeps the work from being done by every process. A subclass
 * gives the pass.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

/**
 * How often a process looks for a pass that acts on what is older than `ageMs`: a quarter of it, at
 * least every 10 minutes, at most every second.
 */
export function sweepIntervalMs(ageMs: number): number {
  return Math.min(10 * 60_000, Math.max(1000, Math.floor(ageMs / 4)));
}

export interface ClaimedSweepOptions {
  redis: Redis;
  /** The claim's key (one per kind of pass). */
  leaseKey: string;
  intervalMs: number;
  /** false: the feature is off (`start` does nothing, a pass answers 0). */
  enabled: boolean;
  logger: Logger;
  /** The log line when a timed pass fails. */
  failure: string;
}

export abstract class ClaimedSweep {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;

  constructor(private readonly o: ClaimedSweepOptions) {}

  /** One pass; what it resolves to (a count) is what `sweep` answers. */
  protected abstract pass(): Promise<number>;

  /** Ticks every interval, starting now (nothing when not enabled). */
  start(): void {
    if (!this.o.enabled || this.timer) return;
    const tick = () =>
      void this.claimAndSweep().catch((err: Error) => this.o.logger.warn({ err }, this.o.failure));
    this.timer = setInterval(tick, this.o.intervalMs);
    this.timer.unref();
    tick();
  }

  /** Stops the timer and waits for a pass under way (it may need connections the caller closes next). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }

  /** One pass if no process made one within the interval; the pass's count, or 0. */
  async claimAndSweep(): Promise<number> {
    const claim = await this.o.redis.set(this.o.leaseKey, '1', 'PX', this.o.intervalMs, 'NX');
    return claim === 'OK' ? this.sweep() : 0;
  }

  /** One pass now (joined while one runs); 0 at once when not enabled. */
  sweep(): Promise<number> {
    if (!this.o.enabled) return Promise.resolve(0);
    this.running ??= this.pass().finally(() => (this.running = null));
    return this.running;
  }
}
