/**
 * BullMQ Workers that start their first job after a few round trips, not after their whole share.
 *
 * A BullMQ Worker fetches its jobs one round trip at a time and starts none of them until it holds
 * `concurrency` of them (or the queue is empty: Worker.mainLoop awaits each fetch in turn). Split into
 * Workers of 250 (execution-worker.ts), the fill still came back as a whole: the Workers fetch side by
 * side over one Redis connection, so the first of them held its share only when nearly all of them
 * held theirs. In the 10,000-site bench the first execution started 1.8–2.0 s after the launch, the
 * worker idle meanwhile, while Redis also took the rollout's releases.
 *
 * Here a Worker's concurrency is kept at what it runs plus {@link FETCH_AHEAD}, up to its share:
 * raised as each job starts, lowered as it ends (BullMQ reads it before every fetch). It starts its
 * first job after at most FETCH_AHEAD round trips and then fetches one more per start; with its share
 * running it behaves as before.
 */
import type { Job, Worker } from 'bullmq';

/** Queue jobs a Worker holds beyond the ones it runs. */
export const FETCH_AHEAD = 16;

export type JobProcessor<D, R> = (job: Job<D>, token?: string) => Promise<R>;

/**
 * The Worker `make` creates (with the processor and the starting concurrency it is given), running
 * `processor` for at most `share` jobs at once and holding at most {@link FETCH_AHEAD} more.
 */
export function fetchAheadWorker<D, R>(
  share: number,
  processor: JobProcessor<D, R>,
  make: (run: JobProcessor<D, R>, concurrency: number) => Worker<D, R>,
): Worker<D, R> {
  let running = 0;
  const allowed = (): number => Math.min(share, running + FETCH_AHEAD);
  const worker = make(async (job, token) => {
    running++;
    worker.concurrency = allowed();
    try {
      return await processor(job, token);
    } finally {
      running--;
      worker.concurrency = allowed();
    }
  }, allowed());
  return worker;
}
