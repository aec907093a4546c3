/**
 * What every execution of a job needs from the job itself and never changes after launch: its
 * timeouts, its retry policy and its firmware image. Read once per job and process, not once per
 * execution: a job of 10,000 devices otherwise read (and parsed) its whole job hash and its image
 * record 10,000 times, nearly all at the same moment.
 */
import type { ExecutionTimeouts, FirmwareRecord, RetryPolicy } from '../protocol/index.js';
import type { FirmwareStore } from '../store/firmware-store.js';
import type { JobStore } from '../store/job-store.js';

export interface LaunchFacts {
  timeouts: ExecutionTimeouts;
  retry: RetryPolicy;
  firmware: FirmwareRecord;
}

/** Jobs remembered per process; older ones are read again if they are still running. */
export const LAUNCH_FACTS_CACHED_JOBS = 256;

export class LaunchFactsCache {
  private readonly entries = new Map<string, Promise<LaunchFacts | null>>();

  constructor(
    private readonly jobs: JobStore,
    private readonly firmware: FirmwareStore,
    private readonly maxJobs = LAUNCH_FACTS_CACHED_JOBS,
  ) {}

  /** The job's launch facts, or null when the job or its image is gone (not remembered). */
  get(jobId: string): Promise<LaunchFacts | null> {
    const hit = this.entries.get(jobId);
    if (hit) return hit;
    const read = this.read(jobId).then(
      (facts) => {
        if (!facts) this.entries.delete(jobId);
        return facts;
      },
      (err: unknown) => {
        this.entries.delete(jobId);
        throw err;
      },
    );
    // Concurrent executions of one job share the one read in flight.
    this.entries.set(jobId, read);
    if (this.entries.size > this.maxJobs) this.entries.delete(this.entries.keys().next().value!);
    return read;
  }

  private async read(jobId: string): Promise<LaunchFacts | null> {
    const job = await this.jobs.get(jobId);
    const firmware = job ? await this.firmware.get(job.firmwareId) : null;
    if (!job || !firmware) return null;
    return { timeouts: job.timeouts, retry: job.retry, firmware };
  }
}
