/** The fleet's shared timer heap and connect pacer, driven by a fake clock. */
import { ConnectPacer } from '../../devices-sim/connect-pacer.js';
import { Scheduler, SchedulerStoppedError, type SchedulerClock } from '../../devices-sim/scheduler.js';

/** A manual clock: `advance(ms)` fires what is due, in order. */
function fakeClock() {
  let now = 0;
  let pending: { at: number; fn: () => void; id: number } | null = null;
  let ids = 0;
  const clock: SchedulerClock & { advance(ms: number): void; armed: () => number } = {
    now: () => now,
    setTimeout: (fn, ms) => {
      pending = { at: now + ms, fn, id: ++ids };
      return pending.id;
    },
    clearTimeout: (id) => {
      if (pending?.id === id) pending = null;
    },
    advance(ms) {
      const target = now + ms;
      while (pending && pending.at <= target) {
        const p: { at: number; fn: () => void } = pending;
        pending = null;
        now = p.at;
        p.fn();
      }
      now = target;
    },
    armed: () => (pending ? 1 : 0),
  };
  return clock;
}

test('callbacks run in deadline order, ties in scheduling order, on one native timer', () => {
  const clock = fakeClock();
  const s = new Scheduler(clock);
  const seen: string[] = [];
  s.after(30, () => seen.push('c'));
  s.after(10, () => seen.push('a'));
  s.after(10, () => seen.push('b'));
  s.after(20, () => seen.push('x'));
  expect(clock.armed()).toBe(1);
  clock.advance(25);
  expect(seen).toEqual(['a', 'b', 'x']);
  clock.advance(10);
  expect(seen).toEqual(['a', 'b', 'x', 'c']);
  expect(s.pending).toBe(0);
  expect(clock.armed()).toBe(0);
});

test('cancelled entries never run; cancelling twice or after firing is harmless', () => {
  const clock = fakeClock();
  const s = new Scheduler(clock);
  const seen: number[] = [];
  const handles = Array.from({ length: 1000 }, (_, i) => s.after(i, () => seen.push(i)));
  for (const h of handles.filter((_, i) => i % 2 === 1)) {
    s.cancel(h);
    s.cancel(h);
  }
  clock.advance(1000);
  expect(seen).toEqual(Array.from({ length: 500 }, (_, i) => i * 2));
  s.cancel(handles[0]);
  expect(s.pending).toBe(0);
});

test('sleep resolves on time and rejects when the scheduler stops', async () => {
  const clock = fakeClock();
  const s = new Scheduler(clock);
  const done = s.sleep(50);
  clock.advance(50);
  await expect(done).resolves.toBeUndefined();
  const pending = s.sleep(1000);
  s.stop();
  await expect(pending).rejects.toBeInstanceOf(SchedulerStoppedError);
  await expect(s.sleep(1)).rejects.toBeInstanceOf(SchedulerStoppedError);
  expect(clock.armed()).toBe(0);
});

test('the pacer starts attempts at its rate and caps handshakes in flight', () => {
  const clock = fakeClock();
  const s = new Scheduler(clock);
  const pacer = new ConnectPacer(s, 100, 30);
  const started: number[] = [];
  const finishers: (() => void)[] = [];
  for (let i = 0; i < 50; i++)
    pacer.enqueue((done) => {
      started.push(clock.now());
      finishers.push(done);
    });
  clock.advance(1000);
  // 100/s with a 5-token burst, but only 30 may be in flight.
  expect(started.length).toBe(30);
  for (const f of finishers.splice(0)) f();
  clock.advance(1000);
  expect(started.length).toBe(50);
  // Never faster than the rate: 50 attempts at 100/s take at least ~0.45 s of clock.
  expect(started[29] - started[0]).toBeGreaterThanOrEqual(240);
  pacer.stop();
  s.stop();
});
