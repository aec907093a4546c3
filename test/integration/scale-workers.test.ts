/**
 * Workers scale out as plain processes sharing Redis: one api,broker process and three worker
 * processes (separate OS processes, as on separate machines). Two jobs over the same 120 devices are
 * launched back to back: the executions must spread over all three workers, and the per-device lock
 * must hold across them: no device ever runs two updates at once, and the device itself never has to
 * refuse a second install because it is busy.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { Fleet } from '../../devices-sim/index.js';
import { EXECUTION_QUEUE } from '../../src/queue/execution-queue.js';
import { isTerminalExecutionState, type ExecutionRecord, type JobRecord } from '../../src/protocol/index.js';
import { SMARTSOLAR } from '../helpers/api-fixtures.js';
import { startScaleDeployment, type ScaleDeployment } from '../helpers/scale-deployment.js';
import { waitFor } from '../helpers/service-harness.js';

const SITES = 40;

let d: ScaleDeployment;
let fleet: Fleet | null = null;

beforeAll(async () => {
  // 20 executions per worker at a time: 120 devices need all three.
  d = await startScaleDeployment({ apis: 1, workers: 3, env: { WORKER_CONCURRENCY: '20' } });
}, 80_000);

afterAll(async () => {
  await fleet?.stop();
  await d?.close();
}, 60_000);

test('executions spread over three worker processes and the per-device lock holds across them', async () => {
  const [api] = d.apis;
  const image = await d.uploadImage(api, SMARTSOLAR);
  const connected = await d.connectSolarFleet(api, { sites: SITES, solarPerSite: 3, seed: 5, salt: 'workers', timeScale: 40, inventoryMs: 30_000 });
  fleet = connected.fleet;
  const solar = connected.solar;
  expect(solar).toHaveLength(SITES * 3);

  const timeouts = { preflightMs: 40_000, downloadingMs: 40_000, installingMs: 40_000, rebootingMs: 40_000, confirmingMs: 40_000, totalMs: 80_000 };
  const launch = () => d.call<{ job: JobRecord }>(api, 'POST', '/api/jobs', { firmwareId: image.id, devices: solar, timeouts });
  const [{ job: first }, { job: second }] = [await launch(), await launch()];

  const results: ExecutionRecord[] = [];
  for (const job of [first, second]) {
    const r = await waitFor(async () => {
      const x = await d.call<{ job: JobRecord; executions: ExecutionRecord[] }>(api, 'GET', `/api/jobs/${job.id}`);
      return x.job.state === 'completed' ? x : null;
    }, 60_000, `job ${job.id} to finish`);
    results.push(...r.executions);
  }
  expect(results.every((e) => isTerminalExecutionState(e.state))).toBe(true);

  // The lock, as the orchestrator saw it: per device, the executions that sent an install never overlapped,
  // and any other one was rejected as busy.
  for (const deviceId of solar) {
    const mine = results.filter((e) => e.deviceId === deviceId);
    expect(mine).toHaveLength(2);
    const ran = mine.filter((e) => e.installSentAt !== null);
    for (const e of mine.filter((x) => x.installSentAt === null)) expect(e).toMatchObject({ state: 'rejected', error: { code: 'device-busy' } });
    if (ran.length === 2) {
      const [a, b] = ran.sort((x, y) => Date.parse(x.installSentAt!) - Date.parse(y.installSentAt!));
      expect(Date.parse(a.finishedAt!)).toBeLessThanOrEqual(Date.parse(b.installSentAt!));
    }
    expect(ran.length).toBeGreaterThanOrEqual(1);
  }
  // …and as the devices saw it: never a second install while busy, never two updates at once.
  for (const deviceId of solar) {
    const truth = fleet.truth.device(deviceId)!;
    expect(truth.installs.filter((i) => i.outcome === 'refused')).toEqual([]);
    const spans = truth.executions.map((e) => [e.acceptedAt, e.finishedAt ?? Infinity]).sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i][0]).toBeGreaterThanOrEqual(spans[i - 1][1]);
  }
  expect(results.filter((e) => e.state === 'succeeded').length).toBeGreaterThanOrEqual(solar.length);

  // Spread: every worker process finished a fair share of the queue jobs (BullMQ records processedBy = host:pid).
  const redis = new Redis(d.redisUrl, { maxRetriesPerRequest: 3 });
  const queue = new Queue(EXECUTION_QUEUE, { connection: redis, prefix: d.prefix });
  try {
    const completed = await queue.getCompleted(0, 1000);
    const total = completed.length;
    for (const w of d.workers) {
      const share = completed.filter((q) => q.processedBy?.endsWith(`:${w.proc.pid}`)).length;
      expect(share).toBeGreaterThanOrEqual(Math.floor(total * 0.1));
    }
    expect(total).toBe(solar.length * 2);
  } finally {
    await queue.close();
    redis.disconnect();
  }
}, 120_000);
