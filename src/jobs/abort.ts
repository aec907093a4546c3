/**
 * Stopping work: aborting a job, or canceling one execution. Only executions that no worker has
 * committed to an install can be canceled; past that point (the device may have accepted) nothing
 * stops them, and asking answers 409. Each cancel is a compare-and-set on the record's seq, so it
 * can never overwrite a worker that has just decided to send the install.
 */
import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import { ConflictError, NotFoundError } from '../errors.js';
import { isTerminalExecutionState, type ExecutionRecord, type JobRecord } from '../protocol/index.js';
import type { ExecutionJobData } from '../queue/execution-queue.js';
import { releaseQueueId } from '../rollout/queue-ids.js';
import type { EventInput, JobStore } from '../store/job-store.js';
import type { StatusPublisher } from '../status/status-publisher.js';

export interface AbortDeps {
  jobs: JobStore;
  queue: Queue<ExecutionJobData>;
  publisher: StatusPublisher | null;
  logger: Logger;
}

/** `ended-canceled`: it had already ended canceled for this very reason (by its worker, see driver.ts). */
type CancelOutcome = 'canceled' | 'in-flight' | 'finished' | 'ended-canceled';

/** Stored writes that lose a race before a cancel gives up: each loss is a worker's step, and there are few before the install. */
const CANCEL_ATTEMPTS = 5;

/** The canceled version of `rec`, with its log line: `reason` says why. */
export function canceledRecord(rec: ExecutionRecord, reason: string, now: string): { record: ExecutionRecord; event: EventInput } {
  return {
    record: {
      ...rec,
      state: 'canceled',
      error: { code: 'canceled', message: reason },
      seq: rec.seq + 1,
      updatedAt: now,
      finishedAt: now,
    },
    event: { deviceId: rec.deviceId, level: 'warn', message: `canceled: ${reason}`, state: 'canceled', phase: rec.phase },
  };
}

/** Cancels one execution if it is not past the point of no return. */
async function tryCancel(deps: AbortDeps, found: ExecutionRecord, reason: string, now: string): Promise<CancelOutcome> {
  let rec: ExecutionRecord | null = found;
  for (let attempt = 0; rec && attempt < CANCEL_ATTEMPTS; attempt++) {
    if (isTerminalExecutionState(rec.state)) return endedOutcome(rec, reason);
    if (rec.installSentAt || rec.installAccepted) return 'in-flight';
    const { record, event } = canceledRecord(rec, reason, now);
    const res = await deps.jobs.update(record, event);
    if (res.ok) {
      deps.publisher?.stored(record, res);
      // Waiting in the queue: take it out. Taken by a worker already: its next save is refused and it stands down.
      await deps.queue.remove(releaseQueueId(rec.executionId, rec.retries ?? 0)).catch(() => 0);
      return 'canceled';
    }
    // Lost a race: a worker stored a step (perhaps its commitment to the install) or the end in between. Look again.
    rec = await deps.jobs.execution(rec.jobId, rec.deviceId);
  }
  // Still racing a worker that is not past the point of no return: once the job is aborted, the
  // store refuses its next step and it cancels the execution itself (driver.ts).
  return rec && isTerminalExecutionState(rec.state) ? endedOutcome(rec, reason) : 'in-flight';
}

function endedOutcome(rec: ExecutionRecord, reason: string): CancelOutcome {
  return rec.state === 'canceled' && rec.error?.message === reason ? 'ended-canceled' : 'finished';
}

/**
 * Cancels every execution of an aborted job that is not past the point of no return: the second
 * half of {@link abortJob}, and how a rollout controller finishes an abort whose process died midway.
 */
export async function cancelRemaining(
  deps: AbortDeps,
  jobId: string,
  reason: string,
  now = new Date().toISOString(),
): Promise<{ canceled: number; inFlight: number }> {
  let canceled = 0;
  let inFlight = 0;
  for (const rec of await deps.jobs.executions(jobId)) {
    const outcome = await tryCancel(deps, rec, `job ${reason}`, now);
    // An execution whose worker found the job aborted and canceled it itself counts as canceled too.
    if (outcome === 'canceled' || outcome === 'ended-canceled') canceled++;
    else if (outcome === 'in-flight') inFlight++;
  }
  return { canceled, inFlight };
}

/**
 * Aborts a job: marks it `aborted` (once: a second abort, or one racing the rollout's abort rule,
 * answers 409), then cancels every execution not yet past the point of no return. `reason` says why
 * (default: "aborted by <by>"); the rollout controller passes the rule that fired.
 */
export async function abortJob(
  deps: AbortDeps,
  jobId: string,
  by: string,
  reason = `aborted by ${by}`,
): Promise<{ job: JobRecord; canceled: number; inFlight: number }> {
  const { jobs, publisher, logger } = deps;
  const job = await jobs.get(jobId);
  if (!job) throw new NotFoundError('job', jobId);
  const now = new Date().toISOString();
  if (!(await jobs.markAborted(jobId, reason, now))) {
    const state = (await jobs.get(jobId))?.state ?? job.state;
    throw new ConflictError('job_finished', `job ${jobId} is already ${state}`, { state });
  }
  const ev = await jobs.appendEvent(jobId, { deviceId: null, level: 'warn', message: `job ${reason}` }, now);
  publisher?.event(ev);
  const { canceled, inFlight } = await cancelRemaining(deps, jobId, reason, now);
  const final = (await jobs.get(jobId))!;
  publisher?.job(final);
  logger.warn({ jobId, by, reason, canceled, inFlight }, 'job aborted');
  return { job: final, canceled, inFlight };
}

/** Cancels one execution; 409 once it is past the point of no return or already finished. */
export async function cancelExecution(deps: AbortDeps, jobId: string, deviceId: string, by: string): Promise<ExecutionRecord> {
  const rec = await deps.jobs.execution(jobId, deviceId);
  if (!rec) throw new NotFoundError('execution', `${jobId}/${deviceId}`);
  const outcome = await tryCancel(deps, rec, `canceled by ${by}`, new Date().toISOString());
  if (outcome === 'in-flight') {
    throw new ConflictError(
      'past_point_of_no_return',
      'the device has been sent the install (or accepted it); the update runs to its end and cannot be canceled',
      { executionId: rec.executionId },
    );
  }
  if (outcome === 'finished' || outcome === 'ended-canceled') {
    throw new ConflictError('execution_finished', `execution ${rec.executionId} has already ended`);
  }
  deps.logger.warn({ jobId, deviceId, by }, 'execution canceled');
  return (await deps.jobs.execution(jobId, deviceId))!;
}
