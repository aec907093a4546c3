/**
 * The job log merge of the portal (web/src/job-log-feed.ts): live lines and the REST backlog, in any
 * order and with repeats, become one stream with every seq exactly once.
 */
import { jest } from '@jest/globals';
import type { JobEvent } from '../../src/protocol/index.js';
import { JobLogFeed, SeqMerger, type EventPage } from '../../web/src/job-log-feed.js';

function ev(seq: number): JobEvent {
  return {
    seq,
    ts: new Date(1_700_000_000_000 + seq).toISOString(),
    jobId: 'jtest0000',
    deviceId: null,
    level: 'info',
    message: `line ${seq}`,
  };
}

/** A fake `GET /api/jobs/:id/events` over lines 1..n. */
function backlog(n: () => number) {
  const calls: number[] = [];
  const fetchPage = async (after: number, limit: number): Promise<EventPage> => {
    calls.push(after);
    const events: JobEvent[] = [];
    for (let s = after + 1; s <= Math.min(n(), after + limit); s++) events.push(ev(s));
    return { events, nextAfter: events.length ? events[events.length - 1].seq : after };
  };
  return { fetchPage, calls };
}

describe('SeqMerger', () => {
  test('delivers in order, holds items above a hole, drops repeats', () => {
    const m = new SeqMerger<{ seq: number }>();
    expect(m.accept([{ seq: 2 }, { seq: 3 }]).map((e) => e.seq)).toEqual([]);
    expect(m.hasGap).toBe(true);
    expect(m.accept([{ seq: 1 }, { seq: 2 }]).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(m.hasGap).toBe(false);
    expect(m.accept([{ seq: 3 }, { seq: 1 }, { seq: 0 }, { seq: 1.5 }])).toEqual([]);
    expect(m.last).toBe(3);
  });

  test.each([[[5, 1, 3, 2, 4]], [[1, 1, 2, 2, 3, 4, 4, 5]], [[5, 4, 3, 2, 1]]])(
    'any arrival order %j yields 1..5 once',
    (order) => {
      const m = new SeqMerger<{ seq: number }>();
      const out = order.flatMap((seq) => m.accept([{ seq }]).map((e) => e.seq));
      expect(out).toEqual([1, 2, 3, 4, 5]);
    },
  );
});

describe('JobLogFeed', () => {
  test('live lines buffered before the backlog merge with it without duplicates', async () => {
    const shown: number[] = [];
    let total = 7;
    const api = backlog(() => total);
    const feed = new JobLogFeed({
      fetchPage: api.fetchPage,
      onAppend: (e) => shown.push(...e.map((x) => x.seq)),
      pageSize: 3,
    });
    // Subscribed first: lines 6 and 7 arrive live before the backlog was fetched.
    feed.live(ev(6));
    feed.live(ev(7));
    expect(shown).toEqual([]);
    await feed.catchUp();
    expect(shown).toEqual([1, 2, 3, 4, 5, 6, 7]);
    // Pages of 3: after=0, then 3; lines 6 and 7 were already here, so the next page starts after 7 and is empty.
    expect(api.calls).toEqual([0, 3, 7]);
    total = 8;
    feed.live(ev(7));
    feed.live(ev(8));
    expect(shown).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    feed.close();
  });

  test('a hole in the live stream is fetched over REST after a short wait', async () => {
    jest.useFakeTimers();
    try {
      const shown: number[] = [];
      const api = backlog(() => 4);
      const feed = new JobLogFeed({
        fetchPage: api.fetchPage,
        onAppend: (e) => shown.push(...e.map((x) => x.seq)),
        gapDelayMs: 100,
      });
      feed.live(ev(1));
      feed.live(ev(4));
      expect(shown).toEqual([1]);
      expect(api.calls).toEqual([]);
      await jest.advanceTimersByTimeAsync(100);
      expect(api.calls).toEqual([1]);
      expect(shown).toEqual([1, 2, 3, 4]);
      feed.close();
    } finally {
      jest.useRealTimers();
    }
  });

  test('a hole that the next live message fills needs no request', async () => {
    jest.useFakeTimers();
    try {
      const shown: number[] = [];
      const api = backlog(() => 3);
      const feed = new JobLogFeed({
        fetchPage: api.fetchPage,
        onAppend: (e) => shown.push(...e.map((x) => x.seq)),
        gapDelayMs: 100,
      });
      feed.live(ev(1));
      feed.live(ev(3));
      feed.live(ev(2));
      await jest.advanceTimersByTimeAsync(200);
      expect(shown).toEqual([1, 2, 3]);
      expect(api.calls).toEqual([]);
      feed.close();
    } finally {
      jest.useRealTimers();
    }
  });

  test('concurrent catch-ups run one at a time and go round again for what came in meanwhile', async () => {
    const shown: number[] = [];
    let total = 2;
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const api = backlog(() => total);
    const fetchPage = async (after: number, limit: number) => {
      if (after === 0) await gate;
      return api.fetchPage(after, limit);
    };
    const feed = new JobLogFeed({ fetchPage, onAppend: (e) => shown.push(...e.map((x) => x.seq)) });
    const a = feed.catchUp();
    total = 3;
    const b = feed.catchUp();
    release();
    await Promise.all([a, b]);
    expect(shown).toEqual([1, 2, 3]);
    feed.close();
  });

  test('a failed fetch is reported and the next catch-up resumes from the last line shown', async () => {
    const errors: unknown[] = [];
    const shown: number[] = [];
    let fail = true;
    const api = backlog(() => 3);
    const feed = new JobLogFeed({
      fetchPage: (after, limit) => (fail ? Promise.reject(new Error('down')) : api.fetchPage(after, limit)),
      onAppend: (e) => shown.push(...e.map((x) => x.seq)),
      onError: (err) => errors.push(err),
    });
    feed.live(ev(1));
    await feed.catchUp();
    expect(errors).toHaveLength(1);
    fail = false;
    await feed.catchUp();
    expect(shown).toEqual([1, 2, 3]);
    expect(api.calls).toEqual([1]);
    feed.close();
  });
});
