/**
 * Finished jobs leave Redis once they have been finished for `JOB_RETENTION_MS`
 * (src/jobs/job-retention.ts): in the service, a job launched on simulated devices is gone from the
 * API (404, not in the list) and from Redis after it finished, its devices' histories kept; and the
 * sweep itself, on the shared test Redis, deletes only what is done with everywhere.
 */
import { Redis } from 'ioredis';
import { pino } from 'pino';
import type { JobRecord } from '../../src/protocol/index.js';
import { JobRetention } from '../../src/jobs/job-retention.js';
import { JobStore } from '../../src/store/job-store.js';
import { createKeys } from '../../src/store/keys.js';
import { metric, parsePromText } from '../helpers/prom-text.js';
import { deleteKeys, scanKeys } from '../helpers/redis-keys.js';
import { startHarness, waitFor, type Harness } from '../helpers/service-harness.js';

describe('in the service', () => {
  let h: Harness | undefined;

  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('deletes a finished job after its retained records are cleared, keeps its devices’ histories', async () => {
    h = await startHarness({
      env: { RETAINED_JOB_TTL_MS: '1000', JOB_RETENTION_MS: '1500' },
      captureLogs: true,
    });
    const harness = h;
    const fleet = await harness.addFleet({
      sites: 1,
      salt: 'job-retention',
      mix: { vebus: 0, solarcharger: 1, battery: 0 },
    });
    const [device] = fleet.devices().filter((d) => d.service === 'solarcharger');
    const firmwareId = harness.image(device.productId).id;
    const res = await harness.api('/api/jobs', {
      method: 'POST',
      json: { firmwareId, devices: [device.deviceId] },
    });
    expect(res.status).toBe(202);
    const job = ((await res.json()) as { job: JobRecord }).job;
    const finished = await waitFor(
      async () => {
        const r = (await (await harness.api(`/api/jobs/${job.id}`)).json()) as { job: JobRecord };
        return r.job.state === 'completed' ? r.job : null;
      },
      30_000,
      'the job to finish',
    );
    expect(finished.counts.succeeded).toBe(1);

    const deleted = await waitFor(
      () => harness.logs.find((l) => l.msg === 'finished jobs deleted (JOB_RETENTION_MS)'),
      15_000,
      'the sweep that deletes the finished job',
    );
    expect(deleted).toMatchObject({ jobs: 1, executions: 1, retentionMs: 1500 });
    // Not before the retention was over, and only after the broker had let go of its records.
    expect(Number(deleted!.time) - Date.parse(finished.finishedAt!)).toBeGreaterThanOrEqual(1500);
    const cleared = harness.logs.find(
      (l) => l.msg === 'retained records of finished jobs cleared from the broker',
    );
    expect(cleared).toBeDefined();
    expect(Number(cleared!.time)).toBeLessThanOrEqual(Number(deleted!.time));

    const gone = await harness.api(`/api/jobs/${job.id}`);
    expect(gone.status).toBe(404);
    expect(((await gone.json()) as { error: { code: string } }).error.code).toBe('job_not_found');
    expect((await harness.api(`/api/jobs/${job.id}/events`)).status).toBe(404);
    const list = (await (await harness.api('/api/jobs')).json()) as { jobs: JobRecord[] };
    expect(list.jobs.map((j) => j.id)).not.toContain(job.id);
    const redis = new Redis(harness.service.config.redisUrl);
    try {
      expect(await scanKeys(redis, `${harness.service.config.queuePrefix}:ff:job:${job.id}*`)).toEqual([]);
    } finally {
      redis.disconnect();
    }
    // The device keeps its update history (which names the job) and its installed version.
    const { history } = (await (await harness.api(`/api/devices/${device.deviceId}`)).json()) as {
      history: { jobId: string; state: string }[];
    };
    expect(history[0]).toMatchObject({ jobId: job.id, state: 'succeeded' });
    const m = parsePromText(await (await harness.api('/metrics', { token: harness.viewerToken })).text());
    expect(metric(m, 'fleetflash_jobs_deleted_total', { kind: 'job' })).toBe(1);
    expect(metric(m, 'fleetflash_jobs_deleted_total', { kind: 'execution' })).toBe(1);
  }, 60_000);
});

describe('the sweep', () => {
  let redis: Redis;
  const prefix = `test-retention-${process.pid}`;
  const keys = createKeys(prefix);
  const RETENTION = 10_000;
  const T = Date.parse('2026-12-08T12:00:00.000Z');
  let now = T;
  const deletions: [number, number][] = [];

  beforeAll(() => {
    redis = new Redis('redis://127.0.0.1:6379');
  });

  afterAll(async () => {
    await deleteKeys(redis, `${prefix}:*`);
    redis.disconnect();
  });

  function retention(): JobRetention {
    return new JobRetention({
      redis,
      keys,
      logger: pino({ level: 'silent' }),
      retentionMs: RETENTION,
      onDeleted: (jobs, executions) => deletions.push([jobs, executions]),
      now: () => now,
    });
  }

  /** Every key a job leaves in Redis: its hash, executions, log and release bookkeeping, index and image usage entries. */
  async function job(
    id: string,
    created: number,
    o: { finished?: number; cleared?: boolean; rollout?: boolean; firmwareId?: string } = {},
  ): Promise<void> {
    const fields: Record<string, string> = {
      spec: JSON.stringify({
        id,
        firmwareId: o.firmwareId ?? 'img',
        createdAt: new Date(created).toISOString(),
      }),
      state: o.finished === undefined ? 'in_progress' : 'completed',
      total: '2',
    };
    if (o.finished !== undefined) fields.finishedAt = new Date(o.finished).toISOString();
    if (o.cleared) fields.topicsClearedAt = new Date(o.finished! + 1).toISOString();
    await redis
      .multi()
      .hset(keys.job(id), fields)
      .hset(keys.jobExecutions(id), `${id}-d1`, '{}', `${id}-d2`, '{}')
      .rpush(keys.jobEvents(id), '{"seq":1}')
      .rpush(keys.jobOrder(id), `${id}-d1`, `${id}-d2`)
      .sadd(keys.jobCanary(id), `${id}-d1`)
      .sadd(keys.jobInFlight(id), `${id}-d2`)
      .zadd(keys.jobRetries(id), created, `${id}-d2`)
      .zadd(keys.jobReleaseLog(id), created, `${id}-d1|0`)
      .zadd(keys.jobUnconfirmed(id), created, `${id}-d1|0`)
      .set(keys.jobLease(id), 'x')
      .zadd(keys.jobs(), created, id)
      .zadd(keys.firmwareJobs(o.firmwareId ?? 'img'), created, id)
      .exec();
    if (o.rollout) await redis.sadd(keys.rollouts(), id);
  }

  const jobKeys = async (id: string) => (await scanKeys(redis, `${keys.job(id)}*`)).sort();
  const index = async () => redis.zrange(keys.jobs(), '0', '-1');

  it('deletes what finished before the cutoff and is done with everywhere, nothing else', async () => {
    const old = T - 3 * RETENTION;
    await job('ja', old, { finished: old + 100, cleared: true });
    await job('jb', old + 1, { finished: old + 100 });
    await job('jc', old + 2);
    await job('jd', old + 3, { finished: T - RETENTION + 1, cleared: true });
    await job('je', old + 4, { finished: old + 100, cleared: true, rollout: true });
    await job('jf', old + 5, { finished: old + 100, cleared: true, firmwareId: 'other' });
    await redis.zadd(keys.jobs(), old + 6, 'orphan');
    const store = new JobStore(redis, keys);
    expect(await store.get('ja')).not.toBeNull();
    expect(await jobKeys('ja')).toHaveLength(10);

    const sweeper = retention();
    expect(await sweeper.claimAndSweep()).toBe(2);
    expect(deletions).toEqual([[2, 4]]);
    for (const id of ['ja', 'jf']) {
      expect([id, await jobKeys(id)]).toEqual([id, []]);
      expect(await store.get(id)).toBeNull();
    }
    // Kept: jb (records still retained), jc (running), jd (finished within the retention), je (the
    // rollout still looks after it). The orphan index entry is dropped.
    expect(await index()).toEqual(['jb', 'jc', 'jd', 'je']);
    expect((await store.list()).map((j) => j.id)).toEqual(['je', 'jd', 'jc', 'jb']);
    for (const id of ['jb', 'jc', 'jd', 'je']) expect([id, (await jobKeys(id)).length]).toEqual([id, 10]);
    expect(await redis.zrange(keys.firmwareJobs('img'), '0', '-1')).toEqual(['jb', 'jc', 'jd', 'je']);
    expect(await redis.exists(keys.firmwareJobs('other'))).toBe(0);
    // Another process within the interval: the claim is taken.
    expect(await sweeper.claimAndSweep()).toBe(0);

    // Its records cleared, the rollout done with it, and the retention over: the rest go.
    await redis.hset(keys.job('jb'), 'topicsClearedAt', new Date(T).toISOString());
    await redis.srem(keys.rollouts(), 'je');
    expect(await sweeper.sweep()).toBe(2);
    expect(await index()).toEqual(['jc', 'jd']);
    now = T + 2;
    expect(await sweeper.sweep()).toBe(1);
    expect(await index()).toEqual(['jc']);
    expect(await jobKeys('jd')).toEqual([]);
    expect(await sweeper.sweep()).toBe(0);
    expect(deletions).toEqual([
      [2, 4],
      [2, 4],
      [1, 2],
    ]);
  });

  it('pages past more kept jobs than one page holds', async () => {
    await deleteKeys(redis, `${prefix}:*`);
    now = T;
    const old = T - 3 * RETENTION;
    const pipe = redis.pipeline();
    for (let i = 0; i < 1200; i++)
      pipe.zadd(keys.jobs(), old + i, `run${i}`).hset(keys.job(`run${i}`), 'spec', '{}');
    await pipe.exec();
    await job('last', old + 5000, { finished: old + 6000, cleared: true });
    expect(await retention().sweep()).toBe(1);
    expect(await jobKeys('last')).toEqual([]);
    expect(await redis.zcard(keys.jobs())).toBe(1200);
  });
});
