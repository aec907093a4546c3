/**
 * A broker that keeps retained state across an api restart (`BROKER_CLUSTER=redis` here; an external
 * broker alike) would keep serving what an api stored in Redis but died before publishing: here an
 * abort whose cancels were stored and never published. The next api process republishes its recent
 * jobs when it starts, so a page or an MQTT reader subscribing afterwards gets the stored state.
 */
import { Redis } from 'ioredis';
import { canceledRecord } from '../../src/jobs/abort.js';
import type { ExecutionRecord, JobRecord } from '../../src/protocol/index.js';
import { JobStore } from '../../src/store/job-store.js';
import { createKeys } from '../../src/store/keys.js';
import { startHarness, waitFor, type Harness } from '../helpers/service-harness.js';
import { StatusWatcher } from '../helpers/status-watcher.js';

let a: Harness | undefined;
let b: Harness | undefined;

afterAll(async () => {
  await a?.close({ keepRedis: true });
  await b?.close();
});

/** A job's records as a page opened now gets them (a browser subscriber: retained, or published since). */
async function retainedOf(
  h: Harness,
  jobId: string,
  devices: number,
): Promise<{ job: JobRecord; executions: Map<string, ExecutionRecord> }> {
  const watcher = await StatusWatcher.connect(h.base, h.viewerToken, jobId);
  try {
    const job = await waitFor(
      () => (watcher.job && watcher.latest.size === devices ? watcher.job : null),
      5000,
      'the retained records',
    );
    return { job, executions: watcher.latest };
  } finally {
    await watcher.close();
  }
}

test('an api that starts republishes what a predecessor stored but never published', async () => {
  a = await startHarness({ env: { BROKER_CLUSTER: 'redis' }, captureLogs: true });
  const prefix = a.service.config.queuePrefix;
  const fleet = await a.addFleet({
    sites: 2,
    salt: 'restart-republish',
    mix: { vebus: 0, solarcharger: 1, battery: 0 },
  });
  const solar = fleet.devices().filter((x) => x.service === 'solarcharger');
  // Scheduled an hour ahead: nothing runs, the executions stay queued.
  const res = await a.api('/api/jobs', {
    method: 'POST',
    json: {
      firmwareId: a.image(solar[0].productId).id,
      devices: solar.map((x) => x.deviceId),
      schedule: { startAt: new Date(Date.now() + 3_600_000).toISOString() },
    },
  });
  expect(res.status).toBe(202);
  const { job } = (await res.json()) as { job: JobRecord };
  const before = await retainedOf(a, job.id, solar.length);
  expect(before.job.state).toBe('queued');
  expect([...before.executions.values()].map((e) => e.state)).toEqual(['queued', 'queued']);
  // The first api's broker was empty: it restored (nothing) and set the retained marker.
  await waitFor(() => a!.logs.some((l) => l.msg === 'retained state restored'), 10_000, 'the first restore');
  const first = a;
  a = undefined;
  await first.close({ keepRedis: true });

  // What an api dying in the middle of an abort leaves: the abort and its cancels stored, none published.
  const redis = new Redis('redis://127.0.0.1:6379');
  try {
    const store = new JobStore(redis, createKeys(prefix));
    const now = new Date().toISOString();
    expect(await store.markAborted(job.id, 'aborted by test', now)).toBe(true);
    for (const e of await store.executions(job.id)) {
      const c = canceledRecord(e, 'job aborted by test', now);
      expect((await store.update(c.record, c.event)).ok).toBe(true);
    }
  } finally {
    await redis.quit();
  }

  b = await startHarness({ env: { BROKER_CLUSTER: 'redis', QUEUE_PREFIX: prefix }, captureLogs: true });
  const line = await waitFor(
    () => b!.logs.find((l) => l.msg === 'recent job state republished'),
    10_000,
    'the start-up republish',
  );
  expect(line).toMatchObject({ scope: 'recent', jobs: 1, executions: 2, devices: 2 });
  // The broker still held the first api's marker: no full restore ran.
  expect(b.logs.some((l) => l.msg === 'retained state restored')).toBe(false);
  const after = await retainedOf(b, job.id, solar.length);
  expect(after.job.state).toBe('aborted');
  expect(after.job.abortReason).toBe('aborted by test');
  for (const e of after.executions.values())
    expect(e).toMatchObject({ state: 'canceled', error: { code: 'canceled' } });
}, 60_000);
