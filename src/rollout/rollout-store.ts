/**
 * The rollout's state in Redis, next to the job: the release order fixed at launch, the canary set,
 * the in-flight set, re-queued retries, the last minute's releases, the lease, the set of jobs the
 * controllers look after, and the channel that wakes them. Every change of it that must be atomic
 * is one Lua step (release-script.ts, and the execution update in store/lua.ts).
 */
import type { ChainableCommander, Redis } from 'ioredis';
import type { JobRecord } from '../protocol/index.js';
import type { JobInit } from '../store/job-store.js';
import { toJobRecord } from '../store/job-store.js';
import type { Keys } from '../store/keys.js';
import { replyValues } from '../store/replies.js';
import { parseReleaseMember, releaseMember } from './queue-ids.js';
import { PACE_WINDOW_MS, perSecondCap, RATE_WINDOW_MS, type RolloutSnapshot } from './release-decision.js';
import { RELEASE_EXECUTIONS, RELEASE_LEASE } from './release-script.js';

/** A new job's release plan. */
export interface ReleasePlan {
  /** Device ids of the eligible executions, in release order. */
  order: readonly string[];
  /** How many of the first ones form the canary wave (0: no waves). */
  canarySize: number;
  /** Executions rejected at launch. */
  launchRejected: number;
}

/** One release of one execution: its device and how many retries came before it. */
export interface ReleasedItem {
  deviceId: string;
  retries: number;
}

export type ReleaseResult =
  | { ok: true; released: ReleasedItem[]; skipped: number }
  | { ok: false; reason: 'lease-lost' | 'not-running' };

export interface ReleaseArgs {
  now: number;
  perMinute: number | undefined;
  maxConcurrent: number | undefined;
  orderLimit: number;
  budget: number;
  leaseToken: string;
  /** Record the wave as passed in the same step. */
  passCanary: boolean;
}

type ScriptRedis = Redis & {
  ffReleaseExecutions(...args: (string | number)[]): Promise<(string | number)[]>;
  ffReleaseLease(...args: string[]): Promise<number>;
};

function withScripts(redis: Redis): ScriptRedis {
  const r = redis as ScriptRedis;
  if (typeof r.ffReleaseExecutions !== 'function') {
    redis.defineCommand('ffReleaseExecutions', { numberOfKeys: 8, lua: RELEASE_EXECUTIONS });
    redis.defineCommand('ffReleaseLease', { numberOfKeys: 1, lua: RELEASE_LEASE });
  }
  return r;
}

/** List and set writes go out in chunks, so no single command carries 20,000 arguments. */
const CHUNK = 1000;

export class RolloutStore {
  private readonly redis: ScriptRedis;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
  ) {
    this.redis = withScripts(redis);
  }

  /** The job hash fields and writes of a new job's plan, for `JobStore.create`'s transaction. */
  initFor(jobId: string, plan: ReleasePlan): JobInit {
    const k = this.keys;
    const canary = plan.order.slice(0, plan.canarySize);
    return {
      fields: {
        eligible: String(plan.order.length),
        next: '0',
        inflight: '0',
        retries: '0',
        launchRejected: String(plan.launchRejected),
        canarySize: String(canary.length),
        ...(canary.length > 0 ? { wave: 'canary' } : {}),
      },
      extend: (multi: ChainableCommander) => {
        for (let i = 0; i < plan.order.length; i += CHUNK)
          multi.rpush(k.jobOrder(jobId), ...plan.order.slice(i, i + CHUNK));
        for (let i = 0; i < canary.length; i += CHUNK)
          multi.sadd(k.jobCanary(jobId), ...canary.slice(i, i + CHUNK));
        if (plan.order.length > 0) multi.sadd(k.rollouts(), jobId);
      },
    };
  }

  /** The job and what the decision needs, read in one round trip; null for an unknown job. */
  async snapshot(jobId: string, now: number): Promise<{ job: JobRecord; snapshot: RolloutSnapshot } | null> {
    const k = this.keys;
    const since = `(${now - RATE_WINDOW_MS}`;
    const paceSince = `(${now - PACE_WINDOW_MS}`;
    const res = await this.redis
      .multi()
      .hgetall(k.job(jobId))
      .zcount(k.jobReleaseLog(jobId), since, '+inf')
      .zrangebyscore(k.jobReleaseLog(jobId), since, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
      .zcount(k.jobReleaseLog(jobId), paceSince, '+inf')
      .zrangebyscore(k.jobReleaseLog(jobId), paceSince, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
      .zcount(k.jobRetries(jobId), '-inf', now)
      .zrangebyscore(k.jobRetries(jobId), `(${now}`, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
      .exec();
    const values = replyValues(res);
    if (!values) return null;
    const [h, recent, oldest, paced, oldestPaced, due, nextRetry] = values as [Record<string, string>, number, string[], number, string[], number, string[]];
    if (!h.spec) return null;
    const job = toJobRecord(h);
    return {
      job,
      snapshot: {
        now,
        jobState: job.state,
        eligible: job.release.eligible,
        cursor: job.release.released,
        inFlight: job.release.inFlight,
        recentReleases: Number(recent),
        oldestRecentRelease: oldest.length ? Number(oldest[1]) : null,
        pacedReleases: Number(paced),
        oldestPacedRelease: oldestPaced.length ? Number(oldestPaced[1]) : null,
        retriesDue: Number(due),
        nextRetryAt: nextRetry.length ? Number(nextRetry[1]) : null,
        counts: job.counts,
        launchRejected: Number(h.launchRejected ?? 0),
        wave: job.release.wave,
        canarySize: job.release.canarySize,
        canaryFinished: job.release.canaryFinished,
        canarySucceeded: job.release.canarySucceeded,
      },
    };
  }

  /** The atomic release step (see release-script.ts). */
  async release(jobId: string, a: ReleaseArgs): Promise<ReleaseResult> {
    const k = this.keys;
    const res = await this.redis.ffReleaseExecutions(
      k.job(jobId),
      k.jobOrder(jobId),
      k.jobExecutions(jobId),
      k.jobInFlight(jobId),
      k.jobRetries(jobId),
      k.jobReleaseLog(jobId),
      k.jobUnconfirmed(jobId),
      k.jobLease(jobId),
      a.now,
      RATE_WINDOW_MS,
      a.perMinute ?? 0,
      a.maxConcurrent ?? 0,
      a.orderLimit,
      a.budget,
      a.leaseToken,
      a.passCanary ? 'rest' : '',
      PACE_WINDOW_MS,
      a.perMinute === undefined ? 0 : perSecondCap(a.perMinute),
    );
    const code = Number(res[0]);
    if (code === -1) return { ok: false, reason: 'lease-lost' };
    if (code === -2) return { ok: false, reason: 'not-running' };
    const released: ReleasedItem[] = [];
    for (let i = 2; i < res.length; i += 2)
      released.push({ deviceId: String(res[i]), retries: Number(res[i + 1]) });
    return { ok: true, released, skipped: Number(res[1]) };
  }

  /** The releases are in the queue: no reconciliation needed for them. */
  async confirm(jobId: string, items: readonly ReleasedItem[]): Promise<void> {
    for (let i = 0; i < items.length; i += CHUNK) {
      const members = items.slice(i, i + CHUNK).map((r) => releaseMember(r.deviceId, r.retries));
      await this.redis.zrem(this.keys.jobUnconfirmed(jobId), ...members);
    }
  }

  /** Releases made before `before` and never confirmed (the releasing process died before enqueueing). */
  async unconfirmed(jobId: string, before: number): Promise<ReleasedItem[]> {
    const members = await this.redis.zrangebyscore(this.keys.jobUnconfirmed(jobId), '-inf', before);
    return members.map(parseReleaseMember);
  }

  async setWave(jobId: string, wave: 'rest'): Promise<void> {
    await this.redis.hset(this.keys.job(jobId), 'wave', wave);
  }

  /** Takes the job's lease for `ms` unless another process holds it. */
  async acquireLease(jobId: string, token: string, ms: number): Promise<boolean> {
    return (await this.redis.set(this.keys.jobLease(jobId), token, 'PX', ms, 'NX')) === 'OK';
  }

  async releaseLease(jobId: string, token: string): Promise<void> {
    await this.redis.ffReleaseLease(this.keys.jobLease(jobId), token);
  }

  /** Jobs the controllers look after. */
  activeJobs(): Promise<string[]> {
    return this.redis.smembers(this.keys.rollouts());
  }

  /** The job needs no more looking after (completed or aborted). */
  async forget(jobId: string): Promise<void> {
    const k = this.keys;
    await this.redis
      .multi()
      .srem(k.rollouts(), jobId)
      .del(k.jobReleaseLog(jobId), k.jobUnconfirmed(jobId), k.jobRetries(jobId))
      .exec();
  }

  /** Wakes the controllers of every process for this job. */
  async notify(jobId: string): Promise<void> {
    await this.redis.publish(this.keys.rolloutChannel(), jobId);
  }
}
