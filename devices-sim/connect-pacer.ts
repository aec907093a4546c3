/**
 * Paces connection attempts across the fleet: a token bucket at `ratePerSec`, plus a cap on
 * handshakes in flight, so 10,000 sites (or a broker restart that drops them all) never turn into a
 * thundering herd. Reconnections queue here too. Idle (empty queue) costs no timer.
 */
import type { Scheduler, TimerHandle } from './scheduler.js';

/** A queued attempt; call `done` once the handshake finished, whatever its outcome. */
export type PacedTask = (done: () => void) => void;

export class ConnectPacer {
  private queue: (PacedTask | null)[] = [];
  private head = 0;
  private tokens: number;
  private lastRefill: number;
  private inFlight = 0;
  private timer: TimerHandle | null = null;
  private stopped = false;
  private readonly burst: number;
  private readonly tickMs: number;

  /**
   * @param ratePerSec attempts started per second.
   * @param maxInFlight handshakes allowed at once. A healthy broker answers in milliseconds, so
   *   rate/10 in flight never limits the rate; a broker that slows down (aedes' in-memory retained
   *   lookup is O(retained) per wildcard subscribe) then slows the pace, instead of queueing
   *   handshakes past mqtt.js's 10 s connect timeout, which would retry them and add load.
   */
  constructor(
    private readonly scheduler: Scheduler,
    private readonly ratePerSec: number,
    private readonly maxInFlight = Math.max(32, Math.ceil(ratePerSec / 10)),
  ) {
    // Up to 50 ms worth of attempts at once: smooth, but not one timer per attempt at high rates.
    this.burst = Math.max(1, Math.floor(ratePerSec / 20));
    this.tickMs = Math.max(10, 1000 / ratePerSec);
    this.tokens = this.burst;
    this.lastRefill = scheduler.now();
  }

  get queued(): number {
    return this.queue.length - this.head;
  }

  enqueue(task: PacedTask): void {
    if (this.stopped) return;
    this.queue.push(task);
    this.pump();
  }

  /** Drops everything queued; running handshakes finish on their own. */
  stop(): void {
    this.stopped = true;
    this.scheduler.cancel(this.timer);
    this.timer = null;
    this.queue = [];
    this.head = 0;
  }

  private pump(): void {
    if (this.stopped) return;
    const now = this.scheduler.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.lastRefill) * this.ratePerSec) / 1000);
    this.lastRefill = now;
    while (this.tokens >= 1 && this.inFlight < this.maxInFlight && this.head < this.queue.length) {
      const task = this.queue[this.head];
      this.queue[this.head++] = null;
      this.tokens -= 1;
      this.inFlight++;
      let finished = false;
      task?.(() => {
        if (finished) return;
        finished = true;
        this.inFlight--;
        if (this.queued > 0 && !this.timer) this.pump();
      });
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (this.queued > 0 && !this.timer && this.inFlight < this.maxInFlight) {
      this.timer = this.scheduler.after(this.tickMs, () => {
        this.timer = null;
        this.pump();
      });
    }
  }
}
