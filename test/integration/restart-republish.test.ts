/**
 * A broker that keeps retained state across an api restart (`BROKER_CLUSTER=redis` here; an external
 * broker alike) would keep serving what an api stored in Redis but died before publishing: here an
 * abort whose cancels were stored and never published. The next api process republishes its recent
 * jobs when it starts, so a page or an MQTT reader subscribing afterwards gets the stored state.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import mqtt from 'mqtt';
import { canceledRecord } from '../../src/jobs/abort.js';
import type { ExecutionRecord, JobRecord } from '../../src/protocol/index.js';
import { JobStore } from '../../src/store/job-store.js';
import { createKeys } from '../../src/store/keys.js';
import { startHarness, waitFor, type Harness } from '../helpers/service-harness.js';

let a: Harness | undefined;
let b: Harness | undefined;

afterAll(async () => {
  await a?.close({ keepRedis: true });
  await b?.close();
});

/** A job's records as a new subscriber gets them: retained, or published since (the newest of each). */
async function retainedOf(
  h: Harness,
  jobId: string,
  devices: number,
): Promise<{ job: JobRecord; executions: Map<string, ExecutionRecord> }> {
  const client = await mqtt.connectAsync(h.service.mqttUrl, {
    username: h.service.config.mqttServiceUser,
    password: h.service.config.mqttServicePassword,
    clientId: `svc-test-${randomBytes(4).toString('hex')}`,
    protocolVersion: 4,
  });
  try {
    let job: JobRecord | null = null;
    const executions = new Map<string, ExecutionRecord>();
    client.on('message', (topic, payload) => {
      if (!payload.length) return;
      if (topic.endsWith('/status')) {
        const r = JSON.parse(payload.toString()) as JobRecord;
        if (!job || job.seq < r.seq) job = r;
      } else {
        const r = JSON.parse(payload.toString()) as ExecutionRecord;
        if ((executions.get(r.deviceId)?.seq ?? -1) < r.seq) executions.set(r.deviceId, r);
      }
    });
    await client.subscribeAsync([`fleetflash/jobs/${jobId}/status`, `fleetflash/jobs/${jobId}/devices/+`], {
      qos: 1,
    });
    const found = await waitFor(
      () => (job && executions.size === devices ? job : null),
      5000,
      'the retained records',
    );
    return { job: found, executions };
  } finally {
    await client.endAsync();
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
