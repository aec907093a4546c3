/**
 * Deletes from Redis the jobs that finished more than `JOB_RETENTION_MS` ago: the job's hash, its
 * executions, log, release bookkeeping and its entries in the job index and its image's usage set.
 *
 * Without it Redis keeps ~2.4 KB for every execution ever run (measured by `npm run bench`, "Redis
 * kept per execution"), and nothing else ever removes a job. What stays after the deletion: the
 * devices' update histories (each device's last 100 entries, which name the job), the audit trail
 * (its own bound) and BullMQ's last 10,000 finished queue entries. The API answers 404 for a deleted
 * job, as for one that never existed.
 *
 * A job is deleted only once it is done with everywhere: finished (every execution terminal, so
 * nothing writes to it again), no longer looked after by a rollout controller, and its retained
 * records cleared from the broker (`topicsClearedAt`, retained-expiry.ts): config requires
 * `RETAINED_JOB_TTL_MS` to be set and no longer than the retention, so the broker lets go of a job's
 * records before Redis lets go of the job, and never holds records of a job the API does not know.
 * One api process sweeps per interval (a claim in Redis); the deletion of a job is one atomic step
 * that checks those conditions again, so a pass that overlaps another deletes nothing twice.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ClaimedSweep, sweepIntervalMs } from '../store/claimed-sweep.js';
import type { Keys } from '../store/keys.js';
import { replyValues } from '../store/replies.js';

/** Jobs read per page of the creation index. */
const PAGE = 500;

/**
 * KEYS: job hash, executions hash, events list, release order, canary set, in-flight set, retry zset,
 * release log, unconfirmed releases, release lease, the job index, the rollouts set, the image's usage
 * zset. ARGV: job id.
 * Returns the number of executions the job had, or -1 when it may not be deleted (yet, or any more).
 */
const DELETE_FINISHED_JOB = `
local f = redis.call('HMGET', KEYS[1], 'finishedAt', 'topicsClearedAt', 'total')
if not f[1] or not f[2] then return -1 end
if redis.call('SISMEMBER', KEYS[12], ARGV[1]) == 1 then return -1 end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10])
redis.call('ZREM', KEYS[11], ARGV[1])
redis.call('ZREM', KEYS[13], ARGV[1])
return tonumber(f[3]) or 0
`;

type ScriptRedis = Redis & { ffDeleteFinishedJob(...args: string[]): Promise<number> };

export interface JobRetentionDeps {
  redis: Redis;
  keys: Keys;
  logger: Logger;
  /** How long after it finished a job stays in Redis; 0: for good (the sweep does nothing). */
  retentionMs: number;
  /** Called after each pass that deleted jobs (metrics). */
  onDeleted?: (jobs: number, executions: number) => void;
  now?: () => number;
}

export class JobRetention extends ClaimedSweep {
  private readonly redis: ScriptRedis;
  private readonly now: () => number;

  constructor(private readonly deps: JobRetentionDeps) {
    super({
      redis: deps.redis,
      leaseKey: deps.keys.jobRetentionLease(),
      intervalMs: sweepIntervalMs(deps.retentionMs),
      enabled: deps.retentionMs !== 0,
      logger: deps.logger,
      failure: 'finished job deletion failed',
    });
    const r = deps.redis as ScriptRedis;
    if (typeof r.ffDeleteFinishedJob !== 'function') {
      deps.redis.defineCommand('ffDeleteFinishedJob', { numberOfKeys: 13, lua: DELETE_FINISHED_JOB });
    }
    this.redis = r;
    this.now = deps.now ?? Date.now;
  }

  /**
   * Visits the jobs created up to the cutoff (a job finished before it was created before it), oldest
   * first. Deleted jobs leave the index, so the next page starts after the ones kept.
   */
  protected async pass(): Promise<number> {
    const { keys, retentionMs } = this.deps;
    const cutoff = this.now() - retentionMs;
    let kept = 0;
    let jobs = 0;
    let executions = 0;
    for (;;) {
      const ids = await this.redis.zrangebyscore(keys.jobs(), '-inf', cutoff, 'LIMIT', kept, PAGE);
      if (ids.length === 0) break;
      const pipe = this.redis.pipeline();
      for (const id of ids) pipe.hmget(keys.job(id), 'spec', 'finishedAt');
      const fields = (replyValues(await pipe.exec()) ?? []) as (string | null)[][];
      for (let i = 0; i < ids.length; i++) {
        const [spec, finishedAt] = fields[i];
        const n =
          spec === null
            ? await this.dropFromIndex(ids[i])
            : finishedAt !== null && Date.parse(finishedAt) <= cutoff
              ? await this.delete(ids[i], spec)
              : -1;
        if (n < 0) kept++;
        else if (spec !== null) {
          jobs++;
          executions += n;
        }
      }
      if (ids.length < PAGE) break;
    }
    if (jobs > 0) {
      this.deps.onDeleted?.(jobs, executions);
      this.deps.logger.info({ jobs, executions, retentionMs }, 'finished jobs deleted (JOB_RETENTION_MS)');
    }
    return jobs;
  }

  /** Deletes one finished job; its executions' count, or -1 when it may not go yet. */
  private async delete(jobId: string, spec: string): Promise<number> {
    const k = this.deps.keys;
    let firmwareId = '';
    try {
      firmwareId = String((JSON.parse(spec) as { firmwareId?: unknown }).firmwareId ?? '');
    } catch {
      // An unreadable spec names no image (its usage key is then one that does not exist); the job goes all the same.
    }
    const n = await this.redis.ffDeleteFinishedJob(
      k.job(jobId),
      k.jobExecutions(jobId),
      k.jobEvents(jobId),
      k.jobOrder(jobId),
      k.jobCanary(jobId),
      k.jobInFlight(jobId),
      k.jobRetries(jobId),
      k.jobReleaseLog(jobId),
      k.jobUnconfirmed(jobId),
      k.jobLease(jobId),
      k.jobs(),
      k.rollouts(),
      k.firmwareJobs(firmwareId),
      jobId,
    );
    if (n >= 0) this.deps.logger.debug({ jobId, executions: n }, 'finished job deleted');
    return n;
  }

  /** An index entry whose job hash is gone (deleted by hand: a launch writes both in one transaction). */
  private async dropFromIndex(jobId: string): Promise<number> {
    await this.redis.zrem(this.deps.keys.jobs(), jobId);
    return 0;
  }
}
