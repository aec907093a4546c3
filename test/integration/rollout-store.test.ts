/**
 * The rollout's Redis steps against a real Redis and a real BullMQ queue, without devices: the
 * atomic release step under concurrent callers, the rate window, retries and skipped entries, the
 * lease, the execution update freeing slots and counting error codes, an aborted job's executions
 * short of the point of no return allowed only to end, two controllers sharing a job, the sweep
 * re-enqueueing a release whose process died before it reached the queue, a controller finishing an
 * abort whose process died midway, and what an abort counts as canceled.
 */
import { randomBytes } from 'node:crypto';
import type { Queue } from 'bullmq';
import { jest } from '@jest/globals';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { formatExecutionId, type ExecutionRecord, type RolloutLimits } from '../../src/protocol/index.js';
import { cancelRemaining } from '../../src/jobs/abort.js';
import { createExecutionQueue, type ExecutionJobData } from '../../src/queue/execution-queue.js';
import { RATE_WINDOW_MS } from '../../src/rollout/release-decision.js';
import { RolloutController } from '../../src/rollout/rollout-controller.js';
import { RolloutStore } from '../../src/rollout/rollout-store.js';
import { JobStore } from '../../src/store/job-store.js';
import { createKeys, type Keys } from '../../src/store/keys.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { deleteKeys } from '../helpers/redis-keys.js';

const T0 = Date.parse('2026-03-02T10:00:00Z');
const logger = pino({ level: 'silent' });
const TIMEOUTS = {
  preflightMs: 1,
  downloadingMs: 1,
  verifyingMs: 1,
  installingMs: 1,
  rebootingMs: 1,
  confirmingMs: 1,
  totalMs: 1,
};

let prefix: string;
let redis: Redis;
let keys: Keys;
let jobs: JobStore;
let store: RolloutStore;
let queue: Queue<ExecutionJobData>;
let counter = 0;

beforeAll(async () => {
  prefix = `t-ro-${randomBytes(4).toString('hex')}`;
  redis = new Redis({ host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null });
  keys = createKeys(prefix);
  jobs = new JobStore(redis, keys);
  store = new RolloutStore(redis, keys);
  queue = createExecutionQueue(redis, prefix);
});

afterAll(async () => {
  await queue.obliterate({ force: true });
  await queue.close();
  await deleteKeys(redis, `${prefix}:*`);
  await redis.quit();
});

const device = (i: number) => `c0619ab1d2e3.solarcharger.${256 + i}`;

/** A job of `n` queued executions with its release plan, as the launcher writes it. */
async function makeJob(n: number, rollout: RolloutLimits = {}, canarySize = 0): Promise<string> {
  const id = `jtest${(counter++).toString().padStart(4, '0')}${randomBytes(2).toString('hex')}`;
  const now = new Date(T0).toISOString();
  const executions: ExecutionRecord[] = Array.from({ length: n }, (_, i) => ({
    executionId: formatExecutionId(id, device(i)),
    jobId: id,
    deviceId: device(i),
    state: 'queued',
    phase: null,
    progress: 0,
    fromVersion: 'v1.59',
    toVersion: 'v1.67',
    error: null,
    attempt: 0,
    seq: 1,
    installSentAt: null,
    installAccepted: false,
    phaseStartedAt: null,
    createdAt: now,
    startedAt: null,
    updatedAt: now,
    finishedAt: null,
    retries: 0,
    retryAt: null,
  }));
  const init = store.initFor(id, { order: executions.map((e) => e.deviceId), canarySize, launchRejected: 0 });
  await jobs.create(
    {
      id,
      firmwareId: 'f'.repeat(64),
      firmwareVersion: 'v1.67',
      firmwareName: 'x',
      timeouts: TIMEOUTS,
      createdBy: 'test',
      createdAt: now,
      rollout,
    },
    executions,
    { deviceId: null, level: 'info', message: 'created' },
    init,
  );
  return id;
}

const release = (jobId: string, over: Partial<Parameters<RolloutStore['release']>[1]> = {}) =>
  store.release(jobId, {
    now: T0,
    perMinute: undefined,
    maxConcurrent: undefined,
    orderLimit: 1000,
    budget: 1000,
    leaseToken: '',
    passCanary: false,
    ...over,
  });

/** Moves an execution to `state` through the real update step, as a worker would. */
async function finish(
  jobId: string,
  deviceId: string,
  state: ExecutionRecord['state'],
  patch: Partial<ExecutionRecord> = {},
) {
  const rec = (await jobs.execution(jobId, deviceId))!;
  const next = { ...rec, state, seq: rec.seq + 1, updatedAt: new Date(T0).toISOString(), ...patch };
  const res = await jobs.update(next, null);
  expect(res.ok).toBe(true);
  return res;
}

test('ten concurrent releasers never exceed maxConcurrent', async () => {
  const jobId = await makeJob(50);
  const results = await Promise.all(Array.from({ length: 10 }, () => release(jobId, { maxConcurrent: 5 })));
  const released = results.flatMap((r) => (r.ok ? r.released : []));
  expect(released).toHaveLength(5);
  expect(new Set(released.map((r) => r.deviceId)).size).toBe(5);
  expect(released.map((r) => r.deviceId).sort()).toEqual([0, 1, 2, 3, 4].map(device).sort());
  expect((await jobs.get(jobId))!.release).toMatchObject({ released: 5, inFlight: 5 });
});

test('a finished execution frees its slot, counts its error code, and wakes the controllers', async () => {
  const jobId = await makeJob(4);
  await release(jobId, { maxConcurrent: 2 });
  const sub = redis.duplicate();
  const heard: string[] = [];
  sub.on('message', (_c: string, m: string) => heard.push(m));
  await sub.subscribe(keys.rolloutChannel());
  try {
    const res = await finish(jobId, device(0), 'failed', {
      error: { code: 'checksum-mismatch', message: 'bad' },
      finishedAt: new Date(T0).toISOString(),
    });
    expect(res.ok && res.job?.errorCounts).toEqual({ 'checksum-mismatch': 1 });
    expect(res.ok && res.job?.release.inFlight).toBe(1);
    const more = await release(jobId, { maxConcurrent: 2 });
    expect(more.ok && more.released.map((r) => r.deviceId)).toEqual([device(2)]);
    while (heard.length === 0) await new Promise((r) => sub.once('message', r));
    expect(heard).toEqual([jobId]);
  } finally {
    await sub.quit();
  }
});

test('a progress report or a phase change returns no job summary; a state change returns the new one', async () => {
  const jobId = await makeJob(1);
  await release(jobId);
  const started = await finish(jobId, device(0), 'in_progress', { phase: 'downloading', startedAt: new Date(T0).toISOString() });
  expect(started.ok && started.job?.counts.in_progress).toBe(1);
  const rec = (await jobs.execution(jobId, device(0)))!;
  const progress = await jobs.update({ ...rec, progress: 40, seq: rec.seq + 1 }, null);
  expect(progress).toMatchObject({ ok: true, job: null, event: null, device: null });
  expect((await jobs.execution(jobId, device(0)))!.progress).toBe(40);
  // The record's JSON as stored comes back for its status publish (serialized once per save).
  expect(progress.ok && progress.recordJson).toBe(await redis.hget(keys.jobExecutions(jobId), device(0)));
  // A phase change writes its log line, and still changes nothing a summary shows.
  const phase = await jobs.update({ ...rec, phase: 'verifying', progress: 60, seq: rec.seq + 2 }, { deviceId: device(0), level: 'info', message: 'phase verifying' });
  expect(phase).toMatchObject({ ok: true, job: null, event: { message: 'phase verifying' }, device: null });
  const ended = await finish(jobId, device(0), 'succeeded', { finishedAt: new Date(T0).toISOString() });
  expect(ended.ok && ended.job).toMatchObject({ state: 'completed', counts: { in_progress: 0, succeeded: 1 } });
});

test('a progress write (same state, no line) takes the short script and refuses what the full one refuses; a state change without a line is written in full', async () => {
  const jobId = await makeJob(2);
  await release(jobId);
  const short = jest.spyOn(redis as unknown as { ffUpdateProgress: () => unknown }, 'ffUpdateProgress');
  const full = jest.spyOn(redis as unknown as { ffUpdateExecution: () => unknown }, 'ffUpdateExecution');
  try {
    await finish(jobId, device(0), 'in_progress', {
      phase: 'downloading',
      installSentAt: new Date(T0).toISOString(),
      installAccepted: true,
    });
    const rec = (await jobs.execution(jobId, device(0)))!;
    const seqBefore = Number(await redis.hget(keys.job(jobId), 'seq'));
    short.mockClear();
    full.mockClear();
    const at = new Date(T0 + 5000).toISOString();
    const progress = await jobs.update({ ...rec, progress: 35, seq: rec.seq + 1, updatedAt: at }, null);
    expect(progress).toMatchObject({ ok: true, job: null, event: null, device: null });
    expect(short).toHaveBeenCalledTimes(1);
    expect(full).not.toHaveBeenCalled();
    // What the full script would have written for it: the record, the job's seq and updatedAt.
    expect((await jobs.execution(jobId, device(0)))!.progress).toBe(35);
    expect(Number(await redis.hget(keys.job(jobId), 'seq'))).toBe(seqBefore + 1);
    expect(await redis.hget(keys.job(jobId), 'updatedAt')).toBe(at);
    // Its refusals are the full script's.
    expect(await jobs.update({ ...rec, progress: 36, seq: rec.seq + 1 }, null)).toEqual({
      ok: false,
      reason: 'stale',
    });
    expect(await jobs.update({ ...rec, deviceId: device(9), progress: 36, seq: rec.seq + 9 }, null)).toEqual({
      ok: false,
      reason: 'missing',
    });
    expect(full).not.toHaveBeenCalled();

    // A state change with no line (a retry back to queued) falls through to the full script: counts move, the summary comes back.
    const queued = await jobs.update(
      { ...rec, state: 'queued', phase: null, installSentAt: null, installAccepted: false, seq: rec.seq + 2 },
      null,
    );
    expect(full).toHaveBeenCalledTimes(1);
    expect(queued.ok && queued.job?.counts).toMatchObject({ queued: 2, in_progress: 0 });

    // On an aborted job, a write before the point of no return is refused as the full script refuses it.
    const other = (await jobs.execution(jobId, device(1)))!;
    await finish(jobId, device(1), 'in_progress', { phase: 'preflight' });
    expect(await jobs.markAborted(jobId, 'test abort', new Date(T0).toISOString())).toBe(true);
    full.mockClear();
    expect(
      await jobs.update(
        { ...other, state: 'in_progress', phase: 'preflight', progress: 5, seq: other.seq + 2 },
        null,
      ),
    ).toEqual({
      ok: false,
      reason: 'aborted',
      abortReason: 'test abort',
    });
    expect(full).not.toHaveBeenCalled();
    // Ended: nothing more is written through either.
    await finish(jobId, device(1), 'canceled', { finishedAt: new Date(T0).toISOString() });
    const ended = (await jobs.execution(jobId, device(1)))!;
    expect(await jobs.update({ ...ended, progress: 9, seq: ended.seq + 1 }, null)).toEqual({
      ok: false,
      reason: 'terminal',
    });
  } finally {
    short.mockRestore();
    full.mockRestore();
  }
});

test('perMinute: at most N in the window (a minute and the guard) and ceil(N/60) per second, on the caller clock', async () => {
  const jobId = await makeJob(200);
  const at = (now: number, perMinute: number) =>
    release(jobId, { now, perMinute }).then((r) => (r.ok ? r.released.length : -1));
  // 120 per minute: 2 per second.
  expect(await at(T0, 120)).toBe(2);
  expect(await at(T0 + 999, 120)).toBe(0);
  for (let s = 1; s < 60; s++) expect(await at(T0 + s * 1000, 120)).toBe(2);
  expect(await at(T0 + 60_000, 120)).toBe(0); // 120 in the window
  expect(await at(T0 + RATE_WINDOW_MS - 1, 120)).toBe(0);
  expect(await at(T0 + RATE_WINDOW_MS, 120)).toBe(2); // the first two left the window
  expect(await at(T0 + RATE_WINDOW_MS + 1, 120)).toBe(0); // paced
});

test('due retries go first; canceled entries are skipped and the cursor moves past them', async () => {
  const jobId = await makeJob(5);
  await release(jobId, { budget: 2 });
  // device 0 re-queued for a retry due at T0+1000; device 2 canceled before its release.
  await finish(jobId, device(0), 'in_progress');
  await finish(jobId, device(0), 'queued', { retries: 1, retryAt: new Date(T0 + 1000).toISOString() });
  await finish(jobId, device(2), 'canceled', { error: { code: 'canceled', message: 'x' } });
  const early = await release(jobId, { now: T0 + 999, budget: 1 });
  expect(early.ok && early.released).toEqual([{ deviceId: device(3), retries: 0 }]);
  expect(early.ok && early.skipped).toBe(1);
  const due = await release(jobId, { now: T0 + 1000, budget: 5 });
  expect(due.ok && due.released).toEqual([
    { deviceId: device(0), retries: 1 },
    { deviceId: device(4), retries: 0 },
  ]);
  expect((await jobs.get(jobId))!.release).toMatchObject({ released: 5, retries: 1, inFlight: 4 });
});

test('the canary wave caps the cursor; releasing with passCanary records the wave as passed', async () => {
  const jobId = await makeJob(6, {}, 2);
  const first = await release(jobId, { orderLimit: 2 });
  expect(first.ok && first.released).toHaveLength(2);
  expect((await jobs.get(jobId))!.release).toMatchObject({ wave: 'canary', canarySize: 2 });
  await finish(jobId, device(0), 'succeeded', { finishedAt: new Date(T0).toISOString() });
  const res = await finish(jobId, device(1), 'failed', {
    error: { code: 'x', message: 'y' },
    finishedAt: new Date(T0).toISOString(),
  });
  expect(res.ok && res.job?.release).toMatchObject({ canaryFinished: 2, canarySucceeded: 1 });
  const rest = await release(jobId, { orderLimit: 6, passCanary: true });
  expect(rest.ok && rest.released).toHaveLength(4);
  expect((await jobs.get(jobId))!.release.wave).toBe('rest');
});

test('a release needs the lease when a token is given, and a running job', async () => {
  const jobId = await makeJob(2);
  expect(await store.acquireLease(jobId, 'mine', 10_000)).toBe(true);
  expect(await store.acquireLease(jobId, 'theirs', 10_000)).toBe(false);
  expect(await release(jobId, { leaseToken: 'theirs' })).toEqual({ ok: false, reason: 'lease-lost' });
  expect((await release(jobId, { leaseToken: 'mine', budget: 1 })).ok).toBe(true);
  await store.releaseLease(jobId, 'theirs');
  expect(await store.acquireLease(jobId, 'theirs', 10_000)).toBe(false);
  await store.releaseLease(jobId, 'mine');
  expect(await jobs.markAborted(jobId, 'test')).toBe(true);
  expect(await jobs.markAborted(jobId, 'again')).toBe(false);
  expect(await release(jobId)).toEqual({ ok: false, reason: 'not-running' });
});

test('once a job is aborted, an execution short of the point of no return may only end; one past it goes on', async () => {
  const jobId = await makeJob(3);
  await finish(jobId, device(1), 'in_progress', { phase: 'downloading', installSentAt: new Date(T0).toISOString(), installAccepted: true });
  expect(await jobs.markAborted(jobId, 'aborted by ops', new Date(T0 + 1000).toISOString())).toBe(true);
  expect((await jobs.get(jobId))!).toMatchObject({ state: 'aborted', abortReason: 'aborted by ops', abortedAt: new Date(T0 + 1000).toISOString() });

  // Device 0 (queued): a worker starting it, or sending its install, is refused with the reason.
  const queued = (await jobs.execution(jobId, device(0)))!;
  const starting: ExecutionRecord = { ...queued, state: 'in_progress', phase: 'preflight', seq: queued.seq + 1 };
  expect(await jobs.update(starting, null)).toEqual({ ok: false, reason: 'aborted', abortReason: 'aborted by ops' });
  expect(await jobs.update({ ...starting, installSentAt: new Date(T0).toISOString() }, null)).toMatchObject({ ok: false, reason: 'aborted' });
  expect(await jobs.execution(jobId, device(0))).toEqual(queued);
  // Its end is stored.
  const res = await finish(jobId, device(0), 'canceled', { error: { code: 'canceled', message: 'job aborted by ops' } });
  expect(res.ok && res.job?.counts).toMatchObject({ queued: 1, canceled: 1, in_progress: 1 });

  // Device 1 had been sent the install: nothing stops it, its steps and its end are stored.
  await finish(jobId, device(1), 'in_progress', { phase: 'installing' });
  await finish(jobId, device(1), 'succeeded', { phase: null });
  expect((await jobs.get(jobId))!).toMatchObject({ state: 'aborted', counts: expect.objectContaining({ succeeded: 1, canceled: 1, queued: 1 }) });
});

test('an abort counts as canceled what a worker canceled for it, not what ended otherwise', async () => {
  const jobId = await makeJob(4);
  // Before the abort: device 1 got its install, device 2 was canceled on its own. Device 3 waits.
  await finish(jobId, device(1), 'in_progress', { phase: 'downloading', installSentAt: new Date(T0).toISOString() });
  await finish(jobId, device(2), 'canceled', { error: { code: 'canceled', message: 'canceled by operator-1' } });
  expect(await jobs.markAborted(jobId, 'aborted by ops', new Date(T0).toISOString())).toBe(true);
  // Device 0: its worker's next step was refused and it canceled the execution itself (driver.ts).
  await finish(jobId, device(0), 'canceled', { error: { code: 'canceled', message: 'job aborted by ops' } });
  const abortDeps = { jobs, queue, publisher: null, logger };
  expect(await cancelRemaining(abortDeps, jobId, 'aborted by ops')).toEqual({ canceled: 2, inFlight: 1 });
  expect((await jobs.execution(jobId, device(3)))!.state).toBe('canceled');
});

describe('controllers', () => {
  const controllers: RolloutController[] = [];
  const start = async (clock: FakeClock, options = {}, log = logger) => {
    const abortDeps = { jobs, queue, publisher: null, logger };
    const c = new RolloutController(
      {
        redis,
        keys,
        store,
        queue,
        publisher: null,
        abort: () => Promise.resolve(),
        finishAbort: (jobId, reason) => cancelRemaining(abortDeps, jobId, reason),
        clock,
        logger: log,
      },
      { sweepIntervalMs: 1000, ...options },
    );
    controllers.push(c);
    await c.start();
    return c;
  };
  afterEach(async () => {
    for (const c of controllers.splice(0)) await c.close();
  });

  test('two controllers on one job release exactly maxConcurrent, each once, into the queue', async () => {
    const clock = new FakeClock(T0);
    const jobId = await makeJob(12, { maxConcurrent: 3 });
    const [a, b] = [await start(clock), await start(clock)];
    a.poke(jobId);
    b.poke(jobId);
    await store.notify(jobId);
    await Promise.all([a.settle(), b.settle()]);
    const waiting = await queue.getJobs(['waiting', 'prioritized']);
    const ours = waiting
      .filter((j) => j.data.jobId === jobId)
      .map((j) => j.id)
      .sort();
    expect(ours).toEqual([0, 1, 2].map((i) => formatExecutionId(jobId, device(i))).sort());
    expect((await jobs.get(jobId))!.release).toMatchObject({ released: 3, inFlight: 3 });
    expect(await store.unconfirmed(jobId, Number.MAX_SAFE_INTEGER)).toEqual([]);
  });

  test('a large job is released in steps of releaseStepMax, all of it from one wake', async () => {
    const clock = new FakeClock(T0);
    const steps: number[] = [];
    const capture = pino({ level: 'debug' }, {
      write: (line: string) => {
        const o = JSON.parse(line) as { msg: string; released?: number };
        if (o.msg === 'executions released') steps.push(o.released!);
      },
    });
    const c = await start(clock, { releaseStepMax: 2 }, capture);
    await c.settle(); // its first sweep: nothing else pokes the job below
    const jobId = await makeJob(120);
    c.poke(jobId);
    await c.settle();
    // 60 steps, more than one turn under the lease takes (50): the controller went on by itself.
    expect(steps).toEqual(Array<number>(60).fill(2));
    expect((await jobs.get(jobId))!.release).toMatchObject({ released: 120, inFlight: 120 });
    const queued = (await queue.getJobs(['waiting', 'prioritized'])).filter((j) => j.data.jobId === jobId);
    expect(queued).toHaveLength(120);
    expect(await store.unconfirmed(jobId, Number.MAX_SAFE_INTEGER)).toEqual([]);
  });

  test('the sweep re-enqueues a release that never reached the queue (its process died in between)', async () => {
    const clock = new FakeClock(T0);
    const jobId = await makeJob(3, { maxConcurrent: 1 });
    const lost = await release(jobId, { maxConcurrent: 1, now: T0 });
    expect(lost.ok && lost.released).toHaveLength(1);
    const executionId = formatExecutionId(jobId, device(0));
    expect(await queue.getJob(executionId)).toBeUndefined();
    const c = await start(clock, { confirmGraceMs: 5000 });
    await c.settle();
    expect(await queue.getJob(executionId)).toBeUndefined(); // too young to be called lost
    clock.advance(5000);
    await c.settle();
    expect((await queue.getJob(executionId))?.data).toEqual({ jobId, deviceId: device(0), executionId });
    expect(await store.unconfirmed(jobId, Number.MAX_SAFE_INTEGER)).toEqual([]);
    expect((await jobs.get(jobId))!.release).toMatchObject({ released: 1, inFlight: 1 });
  });

  test('an abort cut short (its process died after marking the job) is finished once its grace is over', async () => {
    const clock = new FakeClock(T0);
    const jobId = await makeJob(4, { maxConcurrent: 2 });
    const c = await start(clock, { abortGraceMs: 30_000 });
    c.poke(jobId);
    await c.settle();
    expect((await jobs.get(jobId))!.release).toMatchObject({ released: 2, inFlight: 2 });
    // Device 0 got its install before the abort; the aborting process marked the job and died.
    await finish(jobId, device(0), 'in_progress', { phase: 'downloading', installSentAt: new Date(T0).toISOString() });
    expect(await jobs.markAborted(jobId, 'aborted by ops', new Date(T0).toISOString())).toBe(true);

    c.poke(jobId);
    await c.settle();
    // Within the grace the abort may still be canceling them itself: nothing is touched.
    expect((await jobs.get(jobId))!.counts).toMatchObject({ queued: 3, in_progress: 1 });
    clock.advance(30_000);
    await c.settle();
    const job = (await jobs.get(jobId))!;
    expect(job).toMatchObject({ state: 'aborted', finishedAt: null, counts: expect.objectContaining({ queued: 0, canceled: 3, in_progress: 1 }) });
    expect(job.errorCounts).toEqual({ canceled: 3 });
    const canceled = (await jobs.executions(jobId)).filter((e) => e.state === 'canceled');
    expect(canceled.map((e) => [e.deviceId, e.error?.message])).toEqual([1, 2, 3].map((i) => [device(i), 'job aborted by ops']));
    // The released one left the queue; the one past the point of no return is untouched.
    expect(await queue.getJob(formatExecutionId(jobId, device(1)))).toBeUndefined();
    expect((await jobs.execution(jobId, device(0)))!.state).toBe('in_progress');
    expect(await store.activeJobs()).not.toContain(jobId);
  });
});
