/**
 * The BullMQ queue of executions: one queue job per device execution, with the execution id as the
 * queue job id, so enqueuing the same execution twice is a no-op.
 */
import { Queue, type ConnectionOptions } from 'bullmq';
import type { ExecutionRecord } from '../protocol/index.js';

export const EXECUTION_QUEUE = 'executions';
/** Effectively unlimited: an execution leaves the queue only when its record is terminal. */
export const EXECUTION_ATTEMPTS = 1_000_000;
/**
 * Finished queue entries (completed, and failed) the queue keeps, each kind: enough for the dashboard
 * to show the last large rollout; the execution records in the job store are what lasts.
 */
export const FINISHED_QUEUE_JOBS_KEPT = 10_000;
/** Name of the worker's backoff strategy: doubling from 500 ms, capped at 10 s. */
export const CAPPED_BACKOFF = 'capped';

/** Delay before retry `attemptsMade` of a processor that threw. */
export function cappedBackoff(attemptsMade: number): number {
  return Math.min(10_000, 500 * 2 ** Math.min(attemptsMade, 10));
}

export interface ExecutionJobData {
  jobId: string;
  deviceId: string;
  executionId: string;
}

export function createExecutionQueue(connection: ConnectionOptions, prefix: string): Queue<ExecutionJobData> {
  return new Queue<ExecutionJobData>(EXECUTION_QUEUE, {
    connection,
    prefix,
    defaultJobOptions: {
      // The driver decides retries itself from the persisted record; BullMQ retries only cover a
      // processor that threw (Redis or the broker restarting), and a retry re-attaches instead of
      // starting over. The queue never gives up on an execution: only the record's own timeouts end it.
      attempts: EXECUTION_ATTEMPTS,
      backoff: { type: CAPPED_BACKOFF },
      removeOnComplete: { count: FINISHED_QUEUE_JOBS_KEPT },
      removeOnFail: { count: FINISHED_QUEUE_JOBS_KEPT },
    },
  });
}

export async function enqueueExecutions(queue: Queue<ExecutionJobData>, records: ExecutionRecord[]): Promise<void> {
  for (let i = 0; i < records.length; i += 1000) {
    await queue.addBulk(
      records.slice(i, i + 1000).map((r) => ({
        name: 'execution',
        data: { jobId: r.jobId, deviceId: r.deviceId, executionId: r.executionId },
        opts: { jobId: r.executionId },
      })),
    );
  }
}
