/**
 * How WORKER_CONCURRENCY is split over a process's BullMQ Workers (queue/execution-worker.ts): every
 * share at most the maximum, as even as possible, adding up to the whole.
 */
import fc from 'fast-check';
import { concurrencyShares, MAX_CONCURRENCY_PER_QUEUE_WORKER } from '../../src/queue/execution-worker.js';

test.each([
  [1, [1]],
  [250, [250]],
  [251, [126, 125]],
  [2000, Array(8).fill(250)],
  [1001, [201, 200, 200, 200, 200]],
])('%i → %p', (concurrency, shares) => {
  expect(concurrencyShares(concurrency)).toEqual(shares);
});

test('any concurrency: shares add up, none over the maximum or empty, differ by at most one', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 100_000 }), (concurrency) => {
      const shares = concurrencyShares(concurrency);
      expect(shares.reduce((a, b) => a + b, 0)).toBe(concurrency);
      expect(Math.max(...shares)).toBeLessThanOrEqual(MAX_CONCURRENCY_PER_QUEUE_WORKER);
      expect(Math.min(...shares)).toBeGreaterThanOrEqual(1);
      expect(Math.max(...shares) - Math.min(...shares)).toBeLessThanOrEqual(1);
      expect(shares).toHaveLength(Math.ceil(concurrency / MAX_CONCURRENCY_PER_QUEUE_WORKER));
    }),
  );
});
