/**
 * One timer for a whole fleet: a binary min-heap of deadlines behind a single native `setTimeout`.
 * Ten thousand sites with a few pending deadlines each cost one native timer, and an idle site costs
 * none. Cancellation is lazy (the entry is skipped when it surfaces); the heap is compacted when
 * cancelled entries dominate it.
 */

/** A pending callback; pass it to `cancel`. */
export interface TimerHandle {
  readonly at: number;
  /** @internal */ cancelled: boolean;
}

interface Entry extends TimerHandle {
  seq: number;
  fn: () => void;
  onStop?: () => void;
}

/** Thrown into pending `sleep`s when the scheduler stops, so async flows unwind instead of dangling. */
export class SchedulerStoppedError extends Error {
  constructor() {
    super('scheduler stopped');
    this.name = 'SchedulerStoppedError';
  }
}

export interface SchedulerClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realClock: SchedulerClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export class Scheduler {
  private heap: Entry[] = [];
  private seq = 0;
  private cancelledCount = 0;
  private native: unknown = null;
  private nativeAt = Infinity;
  private stopped = false;

  constructor(private readonly clock: SchedulerClock = realClock) {}

  now(): number {
    return this.clock.now();
  }

  /** Number of live (not cancelled) entries: 0 when the fleet is idle. */
  get pending(): number {
    return this.heap.length - this.cancelledCount;
  }

  /** Runs `fn` after `delayMs`. Errors thrown by `fn` are the caller's: wrap what can throw. */
  after(delayMs: number, fn: () => void): TimerHandle {
    return this.push(this.clock.now() + Math.max(0, delayMs), fn);
  }

  cancel(handle: TimerHandle | null | undefined): void {
    if (!handle || handle.cancelled) return;
    handle.cancelled = true;
    this.cancelledCount++;
    if (this.cancelledCount > 256 && this.cancelledCount > this.heap.length / 2) this.compact();
  }

  /** Resolves after `delayMs`; rejects with `SchedulerStoppedError` if the scheduler stops first. */
  sleep(delayMs: number): Promise<void> {
    if (this.stopped) return Promise.reject(new SchedulerStoppedError());
    return new Promise((resolve, reject) => {
      const entry = this.push(this.clock.now() + Math.max(0, delayMs), resolve) as Entry;
      entry.onStop = () => reject(new SchedulerStoppedError());
    });
  }

  /** Drops every entry and the native timer; pending sleeps reject. Later calls schedule nothing. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.disarm();
    const entries = this.heap;
    this.heap = [];
    this.cancelledCount = 0;
    for (const e of entries) if (!e.cancelled) e.onStop?.();
  }

  private push(at: number, fn: () => void): TimerHandle {
    const entry: Entry = { at, fn, seq: this.seq++, cancelled: false };
    if (this.stopped) {
      entry.cancelled = true;
      return entry;
    }
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!less(heap[i], heap[parent])) break;
      [heap[i], heap[parent]] = [heap[parent], heap[i]];
      i = parent;
    }
    if (at < this.nativeAt) this.arm(at);
    return entry;
  }

  private pop(): Entry | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && less(heap[l], heap[m])) m = l;
        if (r < heap.length && less(heap[r], heap[m])) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m], heap[i]];
        i = m;
      }
    }
    return top;
  }

  private arm(at: number): void {
    this.disarm();
    this.nativeAt = at;
    this.native = this.clock.setTimeout(() => this.fire(), Math.max(0, at - this.clock.now()));
  }

  private disarm(): void {
    if (this.native !== null) this.clock.clearTimeout(this.native);
    this.native = null;
    this.nativeAt = Infinity;
  }

  private fire(): void {
    this.native = null;
    this.nativeAt = Infinity;
    // Entries scheduled by callbacks for "now" run in this same pass; the bound keeps a callback
    // that reschedules itself at zero delay from starving the event loop.
    const now = this.clock.now();
    let budget = this.heap.length + 1024;
    while (this.heap.length > 0 && this.heap[0].at <= now && budget-- > 0) {
      const entry = this.pop()!;
      if (entry.cancelled) {
        this.cancelledCount--;
        continue;
      }
      entry.cancelled = true; // a handle that has fired cannot be cancelled any more
      entry.fn();
      if (this.stopped) return;
    }
    while (this.heap.length > 0 && this.heap[0].cancelled) {
      this.pop();
      this.cancelledCount--;
    }
    if (this.heap.length > 0) this.arm(this.heap[0].at);
  }

  private compact(): void {
    this.heap = this.heap.filter((e) => !e.cancelled);
    this.cancelledCount = 0;
    this.heap.sort((a, b) => (less(a, b) ? -1 : 1));
  }
}

function less(a: Entry, b: Entry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
