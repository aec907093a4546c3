/**
 * The benchmark's status latency arithmetic (scripts/lib): pairing each device event with the record the
 * browser got for it, and each second's p99, which tells a run that was slow throughout from one whose
 * p99 is a few bursts.
 */
import { matchLatencies } from '../../scripts/lib/bench-phases.js';
import type { ProgressSample } from '../../scripts/lib/bench-sim.js';
import { describeSeconds, neighboursMedian, p99BySecond } from '../../scripts/lib/bench-stats.js';
import type { ReceivedRecord } from '../../scripts/lib/bench-watcher.js';

test('each second gets the p99 and count of the samples taken in it, in time order, empty seconds left out', () => {
  const start = 5_000_000;
  const at: number[] = [];
  const ms: number[] = [];
  // Second 0: 100 samples of 1..100 ms; second 2: one sample of 7 ms; second 1 has none.
  for (let i = 1; i <= 100; i++) {
    at.push(start + i * 9_000);
    ms.push(i);
  }
  at.push(start + 2_500_000);
  ms.push(7);
  const expected = [
    { second: 0, p99: 99, n: 100 },
    { second: 2, p99: 7, n: 1 },
  ];
  expect(p99BySecond(at, ms, start)).toEqual(expected);
  // Samples are bucketed by when they were taken, not by their order in the arrays.
  expect(p99BySecond([...at].reverse(), [...ms].reverse(), start)).toEqual(expected);
  expect(p99BySecond([], [], start)).toEqual([]);
});

test('the slow seconds are named with their p99s and the share of the events they hold', () => {
  const slow = [
    { second: 0, p99: 91.34, n: 1204 },
    { second: 1, p99: 60.2, n: 1100 },
    { second: 19, p99: 30, n: 6 },
  ];
  expect(describeSeconds(slow, 25_550)).toBe(
    'seconds 0, 1 and 19 (p99 91.3, 60.2 and 30.0 ms), 2,310 of 25,550 events',
  );
  expect(describeSeconds(slow.slice(2), 25_550)).toBe('second 19 (p99 30.0 ms), 6 of 25,550 events');
  expect(describeSeconds(slow, 25_550, 2)).toBe(
    'seconds 0 and 1 (p99 91.3 and 60.2 ms) and 1 more, 2,310 of 25,550 events',
  );
});

test('an event is paired with the first record after it showing its phase and percentage; its send time comes along', () => {
  const sent: ProgressSample[] = [
    ['j1.aa.solarcharger.256', 'downloading', 30, 1_000],
    ['j1.aa.solarcharger.256', 'installing', 70, 2_000],
    ['j1.bb.solarcharger.256', 'installing', 70, 2_500],
    // Outside the window: not counted either way.
    ['j1.aa.solarcharger.256', 'rebooting', 95, 9_000],
  ];
  const received: ReceivedRecord[] = [
    // A record from before the event does not count for it.
    ['aa.solarcharger.256', 'installing', 70, 'in_progress', 1_500],
    ['aa.solarcharger.256', 'downloading', 30, 'in_progress', 1_400],
    ['aa.solarcharger.256', 'installing', 70, 'in_progress', 2_300],
    ['aa.solarcharger.256', 'installing', 70, 'in_progress', 2_900],
  ];
  const m = matchLatencies(sent, received, [0, 5_000]);
  expect(m.latencies).toEqual([0.4, 0.3]);
  expect(m.sentUs).toEqual([1_000, 2_000]);
  // bb's event changed nothing the browser saw.
  expect(m.unmatched).toBe(1);
});

test('bunching: the median count of other events within the window of one', () => {
  // Ten events 10 ms apart: none has a neighbour within ±1 ms.
  expect(
    neighboursMedian(
      Array.from({ length: 10 }, (_, i) => i * 10_000),
      1000,
    ),
  ).toBe(0);
  // Five bursts of four events in the same moment: each has three neighbours, in any order.
  const bursts = Array.from({ length: 20 }, (_, i) => Math.floor(i / 4) * 50_000 + (i % 4) * 100).reverse();
  expect(neighboursMedian(bursts, 1000)).toBe(3);
  // The window is inclusive on both sides.
  expect(neighboursMedian([0, 1000, 2000], 1000)).toBe(1);
  expect(neighboursMedian([], 1000)).toBeNaN();
});
