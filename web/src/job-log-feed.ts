/**
 * A job's log without gaps or duplicates, from two sources: live lines on
 * `fleetflash/jobs/<id>/events` (not retained, so a late page misses the past) and the backlog from
 * `GET /api/jobs/:id/events?after=`. Lines carry a contiguous `seq` (1, 2, 3…) per job, so merging is
 * exact: keep everything above the last delivered seq, deliver in order once contiguous, and fetch
 * over REST whatever a hole says is missing.
 *
 * The order that makes it complete: subscribe first, then fetch the backlog ({@link JobLogFeed.catchUp}
 * once the subscription is acknowledged). Every line is then either in the backlog or arrives live.
 * Lines lost while the connection was down show up as a hole at the next live line, or are fetched by
 * the catch-up that runs after every reconnect.
 */
import type { JobEvent } from '../../src/protocol/index.js';

/** Anything with a contiguous sequence number. */
export interface Sequenced {
  seq: number;
}

/** Pure: merges sequenced items from any source into one gap-free, duplicate-free stream. */
export class SeqMerger<T extends Sequenced> {
  #last = 0;
  readonly #pending = new Map<number, T>();

  /** The highest seq delivered so far (0 before the first). */
  get last(): number {
    return this.#last;
  }

  /** True while items above a hole wait: someone has to fetch what comes after {@link last}. */
  get hasGap(): boolean {
    return this.#pending.size > 0;
  }

  /** Takes items in any order, with repeats; returns those that became deliverable, in seq order. */
  accept(items: Iterable<T>): T[] {
    for (const item of items) {
      if (!Number.isInteger(item.seq) || item.seq <= this.#last) continue;
      if (!this.#pending.has(item.seq)) this.#pending.set(item.seq, item);
    }
    const out: T[] = [];
    for (let next = this.#pending.get(this.#last + 1); next; next = this.#pending.get(this.#last + 1)) {
      this.#pending.delete(next.seq);
      this.#last = next.seq;
      out.push(next);
    }
    return out;
  }
}

/** One page of `GET /api/jobs/:id/events`. */
export interface EventPage {
  events: JobEvent[];
  nextAfter: number;
}

/** What the feed needs from outside; injected so tests drive it without a server. */
export interface JobLogFeedDeps {
  /** Fetches lines with seq > `after`, at most `limit`. */
  fetchPage(after: number, limit: number): Promise<EventPage>;
  /** Receives new lines, in order, each exactly once. */
  onAppend(events: JobEvent[]): void;
  /** A backlog fetch failed; the next live line or reconnect tries again. */
  onError?(err: unknown): void;
  /** Page size for the backlog (the API's maximum is 1000). */
  pageSize?: number;
  /**
   * How long a hole may stay open before it is fetched. Lines published back to back can arrive a
   * little out of order; waiting a moment saves a request that the next message would make moot.
   */
  gapDelayMs?: number;
}

/** Merges a job's live log lines with its REST backlog. */
export class JobLogFeed {
  readonly #merger = new SeqMerger<JobEvent>();
  readonly #deps: Required<Omit<JobLogFeedDeps, 'onError'>> & Pick<JobLogFeedDeps, 'onError'>;
  #running: Promise<void> | null = null;
  #again = false;
  #gapTimer: ReturnType<typeof setTimeout> | null = null;
  #closed = false;

  constructor(deps: JobLogFeedDeps) {
    this.#deps = { pageSize: 1000, gapDelayMs: 150, ...deps };
  }

  /** The highest seq shown so far. */
  get last(): number {
    return this.#merger.last;
  }

  /** A live line from the events topic. */
  live(event: JobEvent): void {
    if (this.#closed) return;
    this.#deliver([event]);
    if (this.#merger.hasGap && !this.#gapTimer && !this.#running) {
      this.#gapTimer = setTimeout(() => {
        this.#gapTimer = null;
        if (this.#merger.hasGap) void this.catchUp();
      }, this.#deps.gapDelayMs);
    }
  }

  /**
   * Fetches everything after the last delivered line, page by page, until the API has no more.
   * Single flight: a call while one runs makes that one go round once more instead of racing it.
   */
  catchUp(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = this.#run().finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  /** Stops timers; later lines and pages are ignored. */
  close(): void {
    this.#closed = true;
    if (this.#gapTimer) clearTimeout(this.#gapTimer);
    this.#gapTimer = null;
  }

  async #run(): Promise<void> {
    try {
      do {
        this.#again = false;
        for (;;) {
          const after = this.#merger.last;
          const page = await this.#deps.fetchPage(after, this.#deps.pageSize);
          if (this.#closed) return;
          this.#deliver(page.events);
          // A short page is the end of the backlog; a page that moved nothing forward would loop forever.
          if (page.events.length < this.#deps.pageSize || this.#merger.last === after) break;
        }
      } while (this.#again && !this.#closed);
    } catch (err) {
      this.#deps.onError?.(err);
    }
  }

  #deliver(events: Iterable<JobEvent>): void {
    const fresh = this.#merger.accept(events);
    if (fresh.length) this.#deps.onAppend(fresh);
  }
}
