/**
 * Clears the retained records of jobs that finished more than `ttlMs` ago from the broker (their
 * `fleetflash/jobs/<id>/status` and `…/devices/<deviceId>` topics); the API keeps serving them, and
 * the portal reads a job from the API before it follows the topics.
 *
 * Every execution ever run left a retained record behind: ~0.9 KB of broker memory each (a 10,000-device
 * job ~9 MB) for as long as the broker ran, while a broker that restarts gets back only the newest
 * jobs (retained-restorer.ts). With the expiry the retained set is bounded by what finished within
 * `ttlMs` plus what still runs, whichever broker holds it (embedded, clustered in Redis, external).
 *
 * Jobs are visited in creation order from a cursor in Redis: every job created at or before it is
 * done with (cleared, or nothing to clear), so a pass reads only the jobs from the oldest one still
 * running or retained onwards. One api process sweeps per interval (a claim in Redis); a cleared job
 * is marked (`topicsClearedAt` in its hash), so a pass that overlaps another only repeats publishes.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { jobDeviceTopic, jobStatusTopic } from '../protocol/index.js';
import { ClaimedSweep, sweepIntervalMs } from '../store/claimed-sweep.js';
import type { Keys } from '../store/keys.js';
import { replyValues } from '../store/replies.js';
import type { StatusPublisher } from './status-publisher.js';

/** Jobs read per page of the creation index. */
const PAGE = 500;
/** Executions cleared before waiting for the broker's acknowledgements. */
const CLEAR_BATCH = 1000;

export interface RetainedExpiryDeps {
  redis: Redis;
  keys: Keys;
  publisher: StatusPublisher;
  logger: Logger;
  /** How long after it finished a job's records stay retained; 0: forever (the expiry does nothing). */
  ttlMs: number;
  now?: () => number;
}

export class RetainedJobExpiry extends ClaimedSweep {
  private readonly now: () => number;

  constructor(private readonly deps: RetainedExpiryDeps) {
    super({
      redis: deps.redis,
      leaseKey: deps.keys.retainedExpiryLease(),
      intervalMs: sweepIntervalMs(deps.ttlMs),
      enabled: deps.ttlMs !== 0,
      logger: deps.logger,
      failure: 'retained job expiry failed',
    });
    this.now = deps.now ?? Date.now;
  }

  /** One pass: how many jobs it cleared (its publishes need the connection open until `stop` resolves). */
  protected async pass(): Promise<number> {
    const { redis, keys, ttlMs } = this.deps;
    const cutoff = this.now() - ttlMs;
    const stored = await redis.get(keys.retainedExpiryCursor());
    const from = stored === null ? '-inf' : stored;
    let cursor: number | null = null;
    let contiguous = true;
    let jobs = 0;
    let executions = 0;
    for (let offset = 0; ; offset += PAGE) {
      const page = await redis.zrangebyscore(keys.jobs(), from, cutoff, 'WITHSCORES', 'LIMIT', offset, PAGE);
      if (page.length === 0) break;
      const pipe = redis.pipeline();
      for (let i = 0; i < page.length; i += 2)
        pipe.hmget(keys.job(page[i]), 'spec', 'finishedAt', 'topicsClearedAt');
      const fields = (replyValues(await pipe.exec()) ?? []) as (string | null)[][];
      for (let i = 0; i < page.length; i += 2) {
        const jobId = page[i];
        const [spec, finishedAt, clearedAt] = fields[i / 2];
        // No spec: the job's hash is gone, nothing of it to clear.
        let done = spec === null || clearedAt !== null;
        if (!done && finishedAt !== null && Date.parse(finishedAt) <= cutoff) {
          const n = await this.clear(jobId);
          if (n !== null) {
            jobs++;
            executions += n;
            done = true;
          }
        }
        if (!done) contiguous = false;
        else if (contiguous) cursor = Number(page[i + 1]);
      }
      if (page.length < 2 * PAGE) break;
    }
    if (cursor !== null) await redis.set(keys.retainedExpiryCursor(), String(cursor));
    if (jobs > 0) {
      this.deps.logger.info(
        { jobs, executions, ttlMs },
        'retained records of finished jobs cleared from the broker',
      );
    }
    return jobs;
  }

  /** Clears one job's topics; the number of executions, or null when the broker did not take them all. */
  private async clear(jobId: string): Promise<number | null> {
    const { redis, keys, publisher } = this.deps;
    const deviceIds = await redis.hkeys(keys.jobExecutions(jobId));
    const mark = publisher.mark();
    for (let i = 0; i < deviceIds.length; i += CLEAR_BATCH) {
      for (const deviceId of deviceIds.slice(i, i + CLEAR_BATCH))
        publisher.clear(jobDeviceTopic(jobId, deviceId), 'execution');
      if (!(await publisher.acknowledged(mark))) return null;
    }
    publisher.clear(jobStatusTopic(jobId), 'job');
    if (!(await publisher.acknowledged(mark))) return null;
    await redis.hset(keys.job(jobId), 'topicsClearedAt', new Date(this.now()).toISOString());
    this.deps.logger.debug(
      { jobId, executions: deviceIds.length },
      'retained records of a finished job cleared',
    );
    return deviceIds.length;
  }
}
