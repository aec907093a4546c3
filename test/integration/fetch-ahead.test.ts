/**
 * A BullMQ Worker made by fetchAheadWorker starts its first job after a few fetches, not after its
 * whole share: real BullMQ, real Redis on 127.0.0.1:6379, 300 queued jobs and one Worker of 300.
 * Without it BullMQ moves all 300 to active, one round trip each, before it runs the first.
 */
import { randomBytes } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { FETCH_AHEAD, fetchAheadWorker } from '../../src/queue/fetch-ahead.js';

const JOBS = 300;

test(`the first job runs with at most ${FETCH_AHEAD} + 1 queue jobs taken; the Worker still runs its whole share (${JOBS}) at once`, async () => {
  const prefix = `ff-fetchahead-${randomBytes(4).toString('hex')}`;
  const connection = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  const queue = new Queue('q', { connection, prefix });
  let worker: Worker<{ i: number }, number> | null = null;
  try {
    await queue.addBulk(Array.from({ length: JOBS }, (_, i) => ({ name: 'j', data: { i } })));
    let activeAtFirst = -1;
    let running = 0;
    let peak = 0;
    let done = 0;
    let release!: () => void;
    // Every job holds its slot until all have started: the Worker must reach its share (300 at once).
    const allStarted = new Promise<void>((resolve) => (release = resolve));
    const finished = new Promise<void>((resolve) => {
      const processor = async (job: Job<{ i: number }>): Promise<number> => {
        running++;
        peak = Math.max(peak, running);
        if (activeAtFirst < 0) activeAtFirst = await queue.getActiveCount();
        if (peak === JOBS) release();
        await allStarted;
        running--;
        if (++done === JOBS) resolve();
        return job.data.i;
      };
      worker = fetchAheadWorker(JOBS, processor, (run, concurrency) => new Worker('q', run, { connection, prefix, concurrency }));
    });
    await finished;
    // Taken when the first one ran: FETCH_AHEAD, and the one more its start allowed (fetched while
    // the count was read). BullMQ alone: all 300.
    expect(activeAtFirst).toBeGreaterThan(0);
    expect(activeAtFirst).toBeLessThanOrEqual(FETCH_AHEAD + 1);
    expect(peak).toBe(JOBS);
    // Idle again (the last job's end is counted after its processor returned): back to FETCH_AHEAD.
    await new Promise((r) => setImmediate(r));
    expect(worker!.concurrency).toBe(FETCH_AHEAD);
  } finally {
    await (worker as Worker | null)?.close();
    await queue.obliterate({ force: true });
    await queue.close();
    connection.disconnect();
  }
}, 30_000);
