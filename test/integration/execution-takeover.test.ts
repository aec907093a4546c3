/**
 * A worker takes a queue job whose execution another process left half-decided:
 * - a worker died after storing the execution's end and before its status publishes left the process
 *   (or before BullMQ heard the queue job was done). The queue job stalls and another worker takes it:
 *   the execution is already terminal, so there is nothing to drive, but the browsers were never told.
 * - an api process died while aborting the job: the job is marked aborted, the execution was never
 *   canceled and its queue job waits. The worker must not start it, let alone send the install.
 * Real Redis, the real embedded broker, BullMQ and a simulated site; the dead process's last writes are
 * made with its store, as it made them, and queue jobs are put back the way BullMQ does.
 */
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { Fleet } from '../../devices-sim/index.js';
import type { ExecutionRecord, JobRecord } from '../../src/protocol/index.js';
import { createExecutionQueue, enqueueExecutions, type ExecutionJobData } from '../../src/queue/execution-queue.js';
import { startHarness, waitFor, type Harness } from '../helpers/service-harness.js';
import { StatusWatcher } from '../helpers/status-watcher.js';

let h: Harness;
let fleet: Fleet;
let watcher: StatusWatcher | undefined;

/** Runs `fn` with a queue of its own on the service's Redis: tests put queue jobs back as a release (or BullMQ, for a stalled one) does. */
async function withQueue<T>(fn: (queue: Queue<ExecutionJobData>) => Promise<T>): Promise<T> {
  const redis = new Redis(h.service.config.redisUrl, { maxRetriesPerRequest: null });
  const queue = createExecutionQueue(redis, h.service.config.queuePrefix);
  try {
    return await fn(queue);
  } finally {
    await queue.close();
    redis.disconnect();
  }
}

/** Launches a job for the site's `service` device, an hour ahead: the rollout releases nothing, so only the test's queue jobs run. */
async function launchHeld(service: string) {
  const device = fleet.devices().find((d) => d.service === service)!;
  const image = h.image(device.productId);
  const startAt = new Date(Date.now() + 3600_000).toISOString();
  const res = await h.api('/api/jobs', { method: 'POST', json: { firmwareId: image.id, devices: [device.deviceId], schedule: { startAt } } });
  expect(res.status).toBe(202);
  const { job } = (await res.json()) as { job: JobRecord };
  const queued = await waitFor(() => h.service.jobs.execution(job.id, device.deviceId));
  return { job, device, image, queued };
}

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
  const { job, device, image, queued } = await launchHeld('solarcharger');
  watcher = await StatusWatcher.connect(h.base, h.viewerToken, job.id);
  await waitFor(() => watcher!.latest.get(device.deviceId)?.state === 'queued', 5000, 'the queued record at the browser');

  // The dead worker's last writes: the execution went through and ended; none of it was published.
  const t = new Date().toISOString();
  const running: ExecutionRecord = { ...queued, state: 'in_progress', phase: 'confirming', progress: 99, installSentAt: t, installAccepted: true, startedAt: t, updatedAt: t, seq: queued.seq + 1 };
  expect((await h.service.jobs.update(running, null)).ok).toBe(true);
  const ended: ExecutionRecord = { ...running, state: 'succeeded', phase: null, progress: 100, finishedAt: t, seq: running.seq + 1 };
  const stored = await h.service.jobs.update(ended, { level: 'info', deviceId: device.deviceId, message: `succeeded: now on ${image.version}` });
  expect(stored.ok && stored.job?.state).toBe('completed');

  // Its queue job stalled and is back in the queue; the service's worker takes it.
  await withQueue(async (queue) => {
    await enqueueExecutions(queue, [ended]);
    await waitFor(async () => (await queue.getJob(ended.executionId))?.returnvalue === 'succeeded', 10_000, 'the queue job to be done');
  });

  await waitFor(() => watcher!.latest.get(device.deviceId)?.seq === ended.seq && watcher!.job?.state === 'completed', 5000, 'the end at the browser');
  expect(watcher.latest.get(device.deviceId)).toMatchObject({ state: 'succeeded', progress: 100, seq: ended.seq });
  expect(watcher.job).toMatchObject({ id: job.id, state: 'completed', counts: expect.objectContaining({ succeeded: 1 }) });
  await watcher.close();
  watcher = undefined;
}, 60_000);

test('an abort cut short by a dead api: the worker taking a released execution cancels it and sends no install', async () => {
  const { job, device, queued } = await launchHeld('platform');
  watcher = await StatusWatcher.connect(h.base, h.viewerToken, job.id);
  await waitFor(() => watcher!.latest.get(device.deviceId)?.state === 'queued', 5000, 'the queued record at the browser');

  // The execution had been released; the api marked the job aborted and died before canceling it.
  expect(await h.service.jobs.markAborted(job.id, 'aborted by operator-1')).toBe(true);
  await withQueue(async (queue) => {
    await enqueueExecutions(queue, [queued]);
    await waitFor(async () => (await queue.getJob(queued.executionId))?.returnvalue === 'canceled', 10_000, 'the queue job to be done');
  });

  const rec = (await h.service.jobs.execution(job.id, device.deviceId))!;
  expect(rec).toMatchObject({ state: 'canceled', installSentAt: null, error: { code: 'canceled', message: 'job aborted by operator-1' } });
  expect(fleet.truth.installCount(device.deviceId, queued.executionId)).toBe(0);
  const stored = (await h.service.jobs.get(job.id))!;
  expect(stored).toMatchObject({ state: 'aborted', counts: expect.objectContaining({ canceled: 1, queued: 0, in_progress: 0 }) });
  expect(stored.finishedAt).not.toBeNull();
  const lines = h.logs.filter((l) => l.jobId === job.id).map((l) => String(l.msg));
  expect(lines).toContain('canceled: job aborted by operator-1');
  expect(lines.filter((m) => /preflight|sending install/.test(m))).toEqual([]);
  await waitFor(() => watcher!.latest.get(device.deviceId)?.state === 'canceled' && watcher!.job?.finishedAt != null, 5000, 'the cancel at the browser');
  expect(watcher.job).toMatchObject({ state: 'aborted', counts: expect.objectContaining({ canceled: 1 }) });
}, 60_000);
