/**
 * The scale-out proof, all as separate OS processes on one private Redis: two api,broker instances
 * clustered through Redis (BROKER_CLUSTER=redis), three worker processes, and the simulator's sites
 * split across both brokers. One job over 500 devices; one worker is killed (SIGKILL) midway. Every
 * execution must end, no install may be sent twice, the work must have spread over all three
 * workers, and a browser subscribed on each broker must have seen every device's final state.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { portalIdsFor, startFleet, type Fleet } from '../../devices-sim/index.js';
import { EXECUTION_QUEUE } from '../../src/queue/execution-queue.js';
import { isTerminalExecutionState, type DeviceRecord, type ExecutionRecord, type JobRecord } from '../../src/protocol/index.js';
import { SMARTSOLAR } from '../helpers/api-fixtures.js';
import { metric, parsePromText } from '../helpers/prom-text.js';
import { startScaleDeployment, type ScaleDeployment } from '../helpers/scale-deployment.js';
import { waitFor } from '../helpers/service-harness.js';
import { StatusWatcher } from '../helpers/status-watcher.js';

const SITES_PER_BROKER = [63, 62];
const SOLAR_PER_SITE = 4;
const DEVICES = 500;

let d: ScaleDeployment;
const fleets: Fleet[] = [];
const watchers: StatusWatcher[] = [];

beforeAll(async () => {
  d = await startScaleDeployment({
    apis: 2,
    workers: 3,
    env: { BROKER_CLUSTER: 'redis', WORKER_CONCURRENCY: '100' },
    apiEnv: (i) => ({ BROKER_ID: `broker-${i}` }),
  });
}, 80_000);

afterAll(async () => {
  for (const w of watchers) await w.close();
  for (const f of fleets) await f.stop();
  await d?.close();
}, 60_000);

async function workerActive(port: number): Promise<number> {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => '');
  return metric(parsePromText(text), 'fleetflash_worker_active_executions');
}

test('500 devices over two clustered brokers and three workers; a worker killed midway; every final state reaches both brokers', async () => {
  const [a, b] = d.apis;
  const image = await d.uploadImage(a, SMARTSOLAR);
  // Sites split over the two brokers; all registered once, through instance A.
  const groups = SITES_PER_BROKER.map((n, i) => portalIdsFor(n, 11, `proof-${i}`));
  const secrets = await d.registerSites(a, groups.flat());
  for (const [i, api] of d.apis.entries()) {
    fleets.push(
      await startFleet({
        url: api.mqttUrl,
        sites: SITES_PER_BROKER[i],
        seed: 11,
        portalIdSalt: `proof-${i}`,
        timeScale: 80,
        mix: { vebus: 0, solarcharger: SOLAR_PER_SITE, battery: 0 },
        credentials: (id) => secrets.get(id) ?? '',
        reconnect: { minMs: 200, maxMs: 2000 },
      }),
    );
  }
  const solar = fleets.flatMap((f) => f.devices()).filter((x) => x.productId === SMARTSOLAR).map((x) => x.deviceId);
  expect(solar).toHaveLength(DEVICES);
  // Both api instances see the whole fleet: each one's fleet monitor follows every site through the cluster.
  for (const api of d.apis) {
    await waitFor(async () => {
      const { devices } = await d.call<{ devices: DeviceRecord[] }>(api, 'GET', '/api/devices');
      return devices.filter((x) => x.productId === SMARTSOLAR && x.online && x.version).length === DEVICES;
    }, 30_000, `inventory on ${api.name}`);
  }

  // Generous for a loaded 2-core machine: a re-attached execution's phase clock kept running while it was orphaned.
  const timeouts = { preflightMs: 40_000, downloadingMs: 40_000, installingMs: 40_000, rebootingMs: 40_000, confirmingMs: 40_000, totalMs: 80_000 };
  const { job } = await d.call<{ job: JobRecord }>(b, 'POST', '/api/jobs', { firmwareId: image.id, devices: solar, timeouts });
  for (const api of d.apis) watchers.push(await StatusWatcher.connect(api.base, d.viewerToken, job.id));

  // Midway: a third of the executions ended and the victim holds some; then it dies without warning.
  const victim = d.workers[1];
  await waitFor(async () => {
    const { job: j } = await d.call<{ job: JobRecord }>(a, 'GET', `/api/jobs/${job.id}`);
    const ended = j.total - j.counts.queued - j.counts.in_progress;
    return ended >= DEVICES / 3 && (await workerActive(victim.metricsPort)) > 0;
  }, 60_000, 'the job to be a third done with work on the victim');
  const heldAtKill = await workerActive(victim.metricsPort);
  await victim.proc.kill('SIGKILL');

  const final = await waitFor(async () => {
    const r = await d.call<{ job: JobRecord; executions: ExecutionRecord[] }>(a, 'GET', `/api/jobs/${job.id}`);
    return r.job.state === 'completed' ? r : null;
  }, 90_000, 'every execution to end');

  expect(final.executions).toHaveLength(DEVICES);
  expect(final.executions.every((e) => isTerminalExecutionState(e.state))).toBe(true);
  const notSucceeded = final.executions.filter((e) => e.state !== 'succeeded');
  const versions = new Map(fleets.flatMap((f) => f.devices()).map((x) => [x.deviceId, x.version]));
  expect(notSucceeded.map((e) => `${e.deviceId} ${e.state} ${e.phase} ${e.error?.code}, device on ${versions.get(e.deviceId)}`)).toEqual([]);
  // The victim's executions were re-attached by the survivors, never re-installed.
  const truth = fleets.map((f) => f.truth);
  for (const e of final.executions) {
    // One request (a QoS 1 redelivery of it is not a second one), one update started.
    const requests = truth.reduce((n, t) => n + t.requestCount(e.deviceId, e.executionId), 0);
    const started = truth.reduce((n, t) => n + t.acceptedCount(e.deviceId, e.executionId), 0);
    expect(`${e.deviceId} requests ${requests} started ${started}`).toBe(`${e.deviceId} requests 1 started 1`);
  }
  expect(heldAtKill).toBeGreaterThan(0);

  // Spread: every worker (the victim too, before it died) finished executions.
  const redis = new Redis(d.redisUrl, { maxRetriesPerRequest: 3 });
  const queue = new Queue(EXECUTION_QUEUE, { connection: redis, prefix: d.prefix });
  try {
    const completed = await queue.getCompleted(0, DEVICES + 10);
    const byWorker = new Map<string, number>();
    for (const q of completed) byWorker.set(q.processedBy ?? '?', (byWorker.get(q.processedBy ?? '?') ?? 0) + 1);
    const pids = d.workers.map((w) => w.proc.pid);
    expect([...byWorker.keys()].filter((k) => pids.some((p) => k.endsWith(`:${p}`)))).toHaveLength(3);
  } finally {
    await queue.close();
    redis.disconnect();
  }

  // Each browser, on its own broker, saw every device's final state (through the cluster for the
  // sites and workers attached to the other broker).
  const expected = new Map(final.executions.map((e) => [e.deviceId, e]));
  for (const w of watchers) {
    const behind = () => [...expected.values()].filter((e) => w.latest.get(e.deviceId)?.seq !== e.seq);
    await waitFor(() => behind().length === 0, 15_000, `final states on ${w.url}`).catch((err: Error) => {
      const seen = (e: ExecutionRecord) => `${e.deviceId}: stored ${e.state} seq ${e.seq}, seen ${w.latest.get(e.deviceId)?.state} seq ${w.latest.get(e.deviceId)?.seq}`;
      throw new Error(`${err.message} (${behind().length} behind; ${behind().slice(0, 5).map(seen).join('; ')})`);
    });
    for (const [deviceId, e] of expected) expect(w.latest.get(deviceId)).toMatchObject({ state: e.state, seq: e.seq, progress: 100 });
  }
}, 170_000);
