/**
 * Several deployments on one Redis stay apart by their `QUEUE_PREFIX`: queues, stores, and, with
 * `BROKER_CLUSTER=redis`, the brokers' keys and pub/sub channels. Two complete services (api, broker,
 * worker) on the shared test Redis, each clustered through it, each with its own prefix.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import mqtt from 'mqtt';
import type { ExecutionRecord, JobRecord } from '../../src/protocol/index.js';
import { metric, parsePromText } from '../helpers/prom-text.js';
import { scanKeys } from '../helpers/redis-keys.js';
import { startHarness, waitFor, type Harness } from '../helpers/service-harness.js';

let a: Harness;
let b: Harness;

beforeAll(async () => {
  [a, b] = await Promise.all([startHarness({ env: { BROKER_CLUSTER: 'redis' } }), startHarness({ env: { BROKER_CLUSTER: 'redis' } })]);
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
});

function serviceClient(h: Harness) {
  return mqtt.connectAsync(h.service.mqttUrl, {
    username: h.service.config.mqttServiceUser,
    password: h.service.config.mqttServicePassword,
    clientId: `svc-test-${randomBytes(4).toString('hex')}`,
    protocolVersion: 4,
  });
}

test('a job of one deployment is invisible to the other: API, workers and metrics', async () => {
  const fleet = await a.addFleet({ sites: 2, salt: 'one-redis', mix: { vebus: 0, solarcharger: 1, battery: 0 } });
  const solar = fleet.devices().filter((x) => x.service === 'solarcharger');
  const res = await a.api('/api/jobs', { method: 'POST', json: { firmwareId: a.image(solar[0].productId).id, devices: solar.map((x) => x.deviceId) } });
  expect(res.status).toBe(202);
  const { job } = (await res.json()) as { job: JobRecord };
  const done = await waitFor(async () => {
    const r = (await (await a.api(`/api/jobs/${job.id}`)).json()) as { job: JobRecord; executions: ExecutionRecord[] };
    return r.job.state === 'completed' ? r : null;
  }, 30_000, 'the job');
  expect(done.job.counts.succeeded).toBe(2);

  expect((await b.api(`/api/jobs/${job.id}`)).status).toBe(404);
  expect(((await (await b.api('/api/jobs')).json()) as { jobs: JobRecord[] }).jobs).toEqual([]);
  expect(((await (await b.api('/api/devices')).json()) as { devices: unknown[] }).devices).toEqual([]);
  const bMetrics = parsePromText(await (await b.api('/metrics', { token: b.viewerToken })).text());
  expect(metric(bMetrics, 'fleetflash_executions_total')).toBe(0);
  expect(metric(bMetrics, 'fleetflash_queue_jobs')).toBe(0);
  const aMetrics = parsePromText(await (await a.api('/metrics', { token: a.viewerToken })).text());
  expect(metric(aMetrics, 'fleetflash_executions_total', { state: 'succeeded' })).toBe(2);
}, 60_000);

test('clustered brokers of different deployments share neither messages nor retained state', async () => {
  const [pubA, subA, subB] = await Promise.all([serviceClient(a), serviceClient(a), serviceClient(b)]);
  try {
    const topic = `fleetflash/jobs/jiso${randomBytes(4).toString('hex')}/status`;
    const seenB: string[] = [];
    subB.on('message', (t) => seenB.push(t));
    await subB.subscribeAsync('fleetflash/jobs/#', { qos: 1 });
    await pubA.publishAsync(topic, '{"n":1}', { qos: 1, retain: true });
    const seenA = new Promise<string>((resolve) => subA.on('message', (t, p) => resolve(`${t} ${p.toString()}`)));
    await subA.subscribeAsync(topic, { qos: 1 });
    expect(await seenA).toBe(`${topic} {"n":1}`);
    await new Promise((r) => setTimeout(r, 300));
    expect(seenB.filter((t) => t === topic)).toEqual([]);
    await pubA.publishAsync(topic, '', { qos: 1, retain: true });
  } finally {
    await Promise.all([pubA.endAsync(), subA.endAsync(), subB.endAsync()]);
  }

  // Every broker key lives under its deployment's prefix; nothing at aedes-persistence-redis' bare names.
  // Each service's retained marker (written once its first restore check is done) is such a key.
  const redis = new Redis('redis://127.0.0.1:6379');
  try {
    for (const h of [a, b]) {
      const keys = await waitFor(async () => {
        const found = await scanKeys(redis, `${h.service.config.queuePrefix}:mqtt:*`);
        return found.length > 0 ? found : null;
      }, 10_000, `broker keys under ${h.service.config.queuePrefix}:mqtt:`);
      expect(keys.length).toBeGreaterThan(0);
    }
    expect(await redis.exists('retained', 'clients', 'will')).toBe(0);
  } finally {
    await redis.quit();
  }
}, 30_000);
