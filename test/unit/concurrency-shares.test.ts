/**
 * How WORKER_CONCURRENCY is split over a process's BullMQ Workers (queue/execution-worker.ts): shares
 * of at most 250 while 16 Workers suffice, as even as possible, adding up to the whole.
 */
import fc from 'fast-check';
import { concurrencyShares, MAX_QUEUE_WORKERS, QUEUE_WORKER_CONCURRENCY } from '../../src/queue/execution-worker.js';

test.each([
  [1, [1]],
  [250, [250]],
  [251, [126, 125]],
  [2000, Array(8).fill(250)],
  [1001, [201, 200, 200, 200, 200]],
  [4000, Array(16).fill(250)],
  [10_000, Array(16).fill(625)],
])('%i → %p', (concurrency, shares) => {
  expect(concurrencyShares(concurrency)).toEqual(shares);
});

test('any concurrency: shares add up, none empty, differ by at most one; as many as needed, 16 at most', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 100_000 }), (concurrency) => {
      const shares = concurrencyShares(concurrency);
      expect(shares.reduce((a, b) => a + b, 0)).toBe(concurrency);
      expect(Math.min(...shares)).toBeGreaterThanOrEqual(1);
      expect(Math.max(...shares) - Math.min(...shares)).toBeLessThanOrEqual(1);
      expect(shares).toHaveLength(Math.min(MAX_QUEUE_WORKERS, Math.ceil(concurrency / QUEUE_WORKER_CONCURRENCY)));
      if (shares.length < MAX_QUEUE_WORKERS) expect(Math.max(...shares)).toBeLessThanOrEqual(QUEUE_WORKER_CONCURRENCY);
    }),
  );
});
