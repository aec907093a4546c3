/**
 * The BullMQ worker that takes executions off the queue and drives each one to its end.
 * A queue job taken over after a worker died (stalled) runs the same processor: the driver finds
 * the persisted record in_progress and re-attaches instead of starting over; a record already ended
 * is published again (the dead worker may have stored the end without publishing it).
 */
import os from 'node:os';
import { WaitingError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { Logger } from 'pino';
import { isTerminalExecutionState, type ExecutionRecord } from '../protocol/index.js';
import type { FirmwareStore } from '../store/firmware-store.js';
import type { JobStore } from '../store/job-store.js';
import { releaseQueueId } from '../rollout/queue-ids.js';
import { driveExecution, type DriverDeps } from '../update/driver.js';
import { cappedBackoff, EXECUTION_QUEUE, type ExecutionJobData } from './execution-queue.js';
import { fetchAheadWorker } from './fetch-ahead.js';
import { LaunchFactsCache } from './launch-facts.js';
import { noSlot, StartWindow } from './start-window.js';

export interface ExecutionWorkerOptions {
  connection: ConnectionOptions;
  prefix: string;
  concurrency: number;
  /** Executions this process lets through their start at once (0: no limit); see start-window.ts. */
  startWindow: number;
  lockDurationMs: number;
  stalledIntervalMs: number;
  jobs: JobStore;
  firmware: FirmwareStore;
  driver: DriverDeps;
  logger: Logger;
}

export interface ExecutionWorker {
  /** True while every BullMQ worker of this process is taking executions. */
  isRunning(): boolean;
  /** Stops taking executions; in-flight ones are handed over (not finished) so another worker re-attaches. */
  close(): Promise<void>;
  running(): number;
  /** Executions in their start, and waiting for a start slot. */
  starts(): { starting: number; waiting: number };
}

/**
 * Executions one BullMQ Worker takes, as long as {@link MAX_QUEUE_WORKERS} allows. A BullMQ Worker
 * fetches its jobs one round trip at a time and starts none of them until it holds `concurrency` (or
 * the queue is empty): one Worker of 2,000 started its first execution of a 4,000-device job 2,000
 * sequential round trips (~1.1 s) after the jobs were queued. Several smaller Workers fetch side by
 * side, and each starts after a few of its share (fetch-ahead.ts).
 */
export const QUEUE_WORKER_CONCURRENCY = 250;
/** BullMQ Workers per process at most: each holds a blocking Redis connection of its own. */
export const MAX_QUEUE_WORKERS = 16;

/** How a process's concurrency is split over its BullMQ Workers: as evenly as possible. */
export function concurrencyShares(concurrency: number): number[] {
  const count = Math.min(MAX_QUEUE_WORKERS, Math.max(1, Math.ceil(concurrency / QUEUE_WORKER_CONCURRENCY)));
  const base = Math.floor(concurrency / count);
  return Array.from({ length: count }, (_, i) => base + (i < concurrency % count ? 1 : 0));
}

export function startExecutionWorker(opts: ExecutionWorkerOptions): ExecutionWorker {
  // Every execution in flight listens for the hand-over, thousands at once: through onAbort
  // (abort-listeners.ts), which puts one listener on the signal.
  const handover = new AbortController();
  let active = 0;
  const startWindow = new StartWindow(opts.startWindow);
  const launchFacts = new LaunchFactsCache(opts.jobs, opts.firmware);
  /**
   * The execution ended before its queue job was taken: canceled while it waited, or a worker stored
   * the end and died before BullMQ heard of it, perhaps before its status publishes left the process.
   * Then no page was told. Publishing the stored end and the job summary again costs one read and two
   * retained publishes; readers keep the highest seq, so a repeat changes nothing.
   */
  const publishEnd = async (record: ExecutionRecord): Promise<void> => {
    const { publisher } = opts.driver;
    publisher.execution(record);
    const job = await opts.jobs.get(record.jobId);
    if (job) publisher.job(job);
    opts.logger.debug({ jobId: record.jobId, deviceId: record.deviceId, state: record.state }, 'execution had already ended; its end published again');
  };
  /**
   * The queue job of an ended execution completes only once the broker has acknowledged the end's
   * publishes. Completing it first left a window (the rest of an event-loop iteration, longer on a
   * slow link) in which a worker killed after BullMQ heard of the end took the unsent publishes with
   * it, and no page was ever told. Not acknowledged (this worker is shutting down, or a publish
   * failed): the queue job goes back to waiting, and whoever takes it publishes the end again.
   */
  const completeOncePublished = async (record: ExecutionRecord, since: number, job: Job<ExecutionJobData>, token?: string): Promise<string> => {
    if (await opts.driver.publisher.acknowledged(since, handover.signal)) return record.state;
    opts.logger.info({ jobId: record.jobId, deviceId: record.deviceId, state: record.state }, 'execution ended but its publishes were not acknowledged; handed back');
    await job.moveToWait(token);
    throw new WaitingError();
  };
  const runExecution = async (job: Job<ExecutionJobData>, token: string | undefined, record: ExecutionRecord | null, pastStart: () => void): Promise<string> => {
    if (!record) return 'missing';
    const { jobId, deviceId } = record;
    const since = opts.driver.publisher.mark();
    if (isTerminalExecutionState(record.state)) {
      await publishEnd(record);
      return completeOncePublished(record, since, job, token);
    }
    // A queue job of an earlier attempt (the execution was re-queued for a retry since): not ours to run.
    if (job.id !== releaseQueueId(record.executionId, record.retries ?? 0)) return 'superseded';
    const facts = await launchFacts.get(jobId);
    if (!facts) throw new Error(`job ${jobId} or its firmware is gone`);
    active++;
    try {
      const { firmware, timeouts, retry } = facts;
      const final = await driveExecution({ record, firmware, timeouts, retry, signal: handover.signal, onPastStart: pastStart }, opts.driver);
      // Re-queued after a transient failure (and stored so): the rollout releases the retry as a new queue job.
      if (final.state === 'queued' && (await opts.jobs.execution(jobId, deviceId))?.state === 'queued') return 'retry-scheduled';
      if (!isTerminalExecutionState(final.state)) {
        // Handed over on shutdown: back to the waiting list, so another worker re-attaches at once.
        await job.moveToWait(token);
        throw new WaitingError();
      }
      return await completeOncePublished(final, since, job, token);
    } finally {
      active--;
    }
  };
  const processor = async (job: Job<ExecutionJobData>, token?: string): Promise<string> => {
    const { jobId, deviceId } = job.data;
    const found = await opts.jobs.execution(jobId, deviceId);
    if (!found) return 'missing';
    // A start goes through the start window; an execution taken over from a dead worker re-attaches at once.
    const slot = found.state === 'queued' ? startWindow.tryAcquire() : noSlot;
    const pastStart = slot ?? (await startWindow.acquire(handover.signal));
    try {
      // Read again after a wait for a slot: an abort may have canceled it meanwhile.
      return await runExecution(job, token, slot ? found : await opts.jobs.execution(jobId, deviceId), pastStart);
    } finally {
      pastStart();
    }
  };
  const workers = concurrencyShares(opts.concurrency).map((share) => {
    const worker = fetchAheadWorker(share, processor, (run, concurrency) =>
      new Worker<ExecutionJobData, string>(EXECUTION_QUEUE, run, {
        // Recorded on each queue job as processedBy: tells operators (and the chaos run) who holds what.
        name: `${os.hostname()}:${process.pid}`,
        connection: opts.connection,
        prefix: opts.prefix,
        concurrency,
        lockDuration: opts.lockDurationMs,
        stalledInterval: opts.stalledIntervalMs,
        // A worker crash is never the execution's fault: stalled executions are always taken over.
        maxStalledCount: 1_000_000,
        settings: { backoffStrategy: (attemptsMade: number) => cappedBackoff(attemptsMade) },
      }),
    );
    worker.on('error', (err) => opts.logger.error({ err }, 'execution worker error'));
    worker.on('stalled', (id) => opts.logger.warn({ executionId: id }, 'execution stalled; re-attaching'));
    return worker;
  });
  return {
    isRunning: () => workers.every((w) => w.isRunning()),
    running: () => active,
    starts: () => ({ starting: startWindow.starting, waiting: startWindow.waiting }),
    async close() {
      // close() stops fetching at once and then waits for the processors, which the abort releases.
      const closing = Promise.all(workers.map((w) => w.close()));
      handover.abort();
      await closing;
    },
  };
}
