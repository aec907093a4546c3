/**
 * A worker can die after storing an execution's end and before its status publishes leave the process
 * (or before BullMQ hears the queue job is done). The queue job then stalls and another worker takes it:
 * the execution is already terminal, so there is nothing to drive, but the browsers were never told.
 * Real Redis, the real embedded broker and BullMQ; the dead worker's last writes are made with its
 * store, as it made them, and its stalled queue job is put back the way BullMQ does.
 */
import { Redis } from 'ioredis';
import type { Fleet } from '../../devices-sim/index.js';
import type { ExecutionRecord, JobRecord } from '../../src/protocol/index.js';
import { createExecutionQueue, enqueueExecutions } from '../../src/queue/execution-queue.js';
import { startHarness, waitFor, type Harness } from '../helpers/service-harness.js';
import { StatusWatcher } from '../helpers/status-watcher.js';

let h: Harness;
let fleet: Fleet;
let watcher: StatusWatcher | undefined;

beforeAll(async () => {
  h = await startHarness({ captureLogs: true });
  fleet = await h.addFleet({ sites: 1, salt: 'takeover' });
  // The new broker held no retained state, so the service restores it from Redis once, in two passes
  // a second apart: wait for that to end, or its second pass would publish what this test stored.
  await waitFor(() => h.logs.some((l) => l.msg === 'retained state restored'), 10_000, 'the retained restore to end');
});

afterAll(async () => {
  await watcher?.close();
  await h?.close();
});

test('an execution that ended with a dead worker: the worker taking its queue job over publishes the end', async () => {
  const device = fleet.devices().find((d) => d.service === 'solarcharger')!;
  const image = h.image(device.productId);
  // Scheduled an hour ahead: the rollout releases nothing, so only this test's queue job runs.
  const startAt = new Date(Date.now() + 3600_000).toISOString();
  const res = await h.api('/api/jobs', { method: 'POST', json: { firmwareId: image.id, devices: [device.deviceId], schedule: { startAt } } });
  expect(res.status).toBe(202);
  const { job } = (await res.json()) as { job: JobRecord };
  watcher = await StatusWatcher.connect(h.base, h.viewerToken, job.id);
  const queued = await waitFor(() => h.service.jobs.execution(job.id, device.deviceId));
  await waitFor(() => watcher!.latest.get(device.deviceId)?.state === 'queued', 5000, 'the queued record at the browser');

  // The dead worker's last writes: the execution went through and ended; none of it was published.
  const t = new Date().toISOString();
  const running: ExecutionRecord = { ...queued, state: 'in_progress', phase: 'confirming', progress: 99, installSentAt: t, installAccepted: true, startedAt: t, updatedAt: t, seq: queued.seq + 1 };
  expect((await h.service.jobs.update(running, null)).ok).toBe(true);
  const ended: ExecutionRecord = { ...running, state: 'succeeded', phase: null, progress: 100, finishedAt: t, seq: running.seq + 1 };
  const stored = await h.service.jobs.update(ended, { level: 'info', deviceId: device.deviceId, message: `succeeded: now on ${image.version}` });
  expect(stored.ok && stored.job?.state).toBe('completed');

  // Its queue job stalled and is back in the queue; the service's worker takes it.
  const redis = new Redis(h.service.config.redisUrl, { maxRetriesPerRequest: null });
  const queue = createExecutionQueue(redis, h.service.config.queuePrefix);
  try {
    await enqueueExecutions(queue, [ended]);
    await waitFor(async () => (await queue.getJob(ended.executionId))?.returnvalue === 'succeeded', 10_000, 'the queue job to be done');
  } finally {
    await queue.close();
    redis.disconnect();
  }

  await waitFor(() => watcher!.latest.get(device.deviceId)?.seq === ended.seq && watcher!.job?.state === 'completed', 5000, 'the end at the browser');
  expect(watcher.latest.get(device.deviceId)).toMatchObject({ state: 'succeeded', progress: 100, seq: ended.seq });
  expect(watcher.job).toMatchObject({ id: job.id, state: 'completed', counts: expect.objectContaining({ succeeded: 1 }) });
}, 60_000);
