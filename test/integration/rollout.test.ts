/**
 * Rollouts end to end against real Redis, the real broker, BullMQ workers and simulated sites:
 * concurrency measured on the devices (the simulator's ground truth), canary gating, the abort rule
 * with exact counts, retries before and never after the point of no return, and the launch checks
 * (product fit, version order) as `rejected` executions.
 */
import type { Fleet } from '../../devices-sim/index.js';
import { connectMqtt, waitConnected } from '../../src/mqtt/connect.js';
import type { FirmwareRecord, HistoryEntry, JobRecord } from '../../src/protocol/index.js';
import {
  installRequestsOf,
  installsOf,
  jobFinished,
  jobWhere,
  launchJob,
  solarChargers,
} from '../helpers/rollout-helpers.js';
import { startHarness, type Harness } from '../helpers/service-harness.js';

const MPPT = 0xa058;
const ONLY_MPPTS = (n: number) => ({ mix: { vebus: 0, battery: 0, solarcharger: n } });
/** Whole updates over simulated sites: generous, for a loaded CI machine (alone each takes a few seconds). */
const SLOW = 90_000;

let h: Harness;
let image: FirmwareRecord;
/** Sites whose MPPTs fail every install after accepting it (checksum mismatch on the device). */
let bad: Fleet;

beforeAll(async () => {
  h = await startHarness();
  image = h.image(MPPT);
  bad = await h.addFleet({
    sites: 2,
    salt: 'rollout-bad',
    ...ONLY_MPPTS(3),
    faults: { checksumMismatch: 1 },
  });
});

afterAll(async () => {
  await h?.close();
});

test(
  'maxConcurrent is never exceeded on the devices, and is reached',
  async () => {
    const fleet = await h.addFleet({ sites: 6, salt: 'rollout-conc', ...ONLY_MPPTS(3) });
    const sites = fleet.sites.map((s) => s.portalId);
    const job = await launchJob(h, {
      firmwareId: image.id,
      filter: { sites },
      rollout: { maxConcurrent: 3 },
    });
    expect(job.target).toEqual({ kind: 'filter', filter: { sites }, matched: 18 });
    expect(job.rollout).toEqual({ maxConcurrent: 3 });
    const { job: done, executions } = await jobFinished(h, job.id);
    expect(done.counts.succeeded).toBe(18);
    expect(executions.every((e) => e.state === 'succeeded')).toBe(true);
    // Measured on the devices, not from our own counters: at most 3 updating at any moment, and 3 at some.
    expect(fleet.truth.maxConcurrentUpdates()).toBe(3);
    expect(installsOf(fleet, job.id)).toHaveLength(18);
    expect(done.release).toMatchObject({ eligible: 18, released: 18, inFlight: 0, wave: null });
  },
  SLOW,
);

test(
  'the canary wave runs alone; the rest starts only after it succeeded',
  async () => {
    const fleet = await h.addFleet({ sites: 4, salt: 'rollout-canary', ...ONLY_MPPTS(3) });
    const devices = solarChargers(fleet);
    const job = await launchJob(h, {
      firmwareId: image.id,
      devices,
      rollout: { waves: { canary: 3, successThresholdPercent: 100 } },
    });
    expect(job.release).toMatchObject({ wave: 'canary', canarySize: 3, eligible: 12 });
    const { job: done } = await jobFinished(h, job.id);
    expect(done.counts.succeeded).toBe(12);
    expect(done.release).toMatchObject({ wave: 'rest', canaryFinished: 3, canarySucceeded: 3 });
    const truth = installsOf(fleet, job.id);
    const canary = truth.filter((t) => devices.slice(0, 3).includes(t.deviceId));
    const rest = truth.filter((t) => !devices.slice(0, 3).includes(t.deviceId));
    expect([canary.length, rest.length]).toEqual([3, 9]);
    // On the devices: every canary update had ended before the first of the rest was accepted.
    const canaryEnd = Math.max(...canary.map((t) => t.finishedAt!));
    expect(Math.min(...rest.map((t) => t.acceptedAt))).toBeGreaterThanOrEqual(canaryEnd);
  },
  SLOW,
);

test(
  'a canary below its success rate aborts the job; no other device is touched',
  async () => {
    const good = await h.addFleet({ sites: 2, salt: 'rollout-canary-fail', ...ONLY_MPPTS(3) });
    const [b0, b1] = solarChargers(bad);
    const devices = [b0, solarChargers(good)[0], b1, ...solarChargers(good).slice(1)];
    const job = await launchJob(h, {
      firmwareId: image.id,
      devices,
      rollout: { waves: { canary: 3, successThresholdPercent: 100 } },
    });
    const { job: done, executions } = await jobFinished(h, job.id);
    expect(done.state).toBe('aborted');
    expect(done.abortReason).toMatch(/canary wave reached 33\.3% success \(1 of 3\), below 100%/);
    expect(done.counts).toMatchObject({ succeeded: 1, failed: 2, canceled: 5, queued: 0, in_progress: 0 });
    expect(done.errorCounts).toEqual({ 'checksum-mismatch': 2, canceled: 5 });
    expect(
      executions.filter((e) => devices.slice(3).includes(e.deviceId)).every((e) => e.state === 'canceled'),
    ).toBe(true);
    expect(installRequestsOf([good, bad], job.id)).toBe(3);
  },
  SLOW,
);

test(
  'the abort rule fires after minExecuted at the threshold, with exact counts',
  async () => {
    const good = await h.addFleet({ sites: 2, salt: 'rollout-threshold', ...ONLY_MPPTS(3) });
    const g = solarChargers(good);
    const b = solarChargers(bad);
    // Serial (maxConcurrent 1), so the order decides: ok, fail, ok, fail → 2 of 4 = 50 % → abort.
    const devices = [g[0], b[2], g[1], b[3], g[2], g[3], b[4], g[4]];
    const job = await launchJob(h, {
      firmwareId: image.id,
      devices,
      rollout: { maxConcurrent: 1 },
      abort: { failureThresholdPercent: 50, minExecuted: 4 },
    });
    expect(job.abort).toEqual({ failureThresholdPercent: 50, minExecuted: 4 });
    const { job: done, executions } = await jobFinished(h, job.id);
    expect(done.state).toBe('aborted');
    expect(done.abortReason).toContain('2 of 4 executed failed (50% ≥ 50%)');
    expect(done.counts).toMatchObject({
      succeeded: 2,
      failed: 2,
      canceled: 4,
      queued: 0,
      in_progress: 0,
      timed_out: 0,
    });
    expect(done.errorCounts).toEqual({ 'checksum-mismatch': 2, canceled: 4 });
    expect(executions.filter((e) => devices.slice(4).includes(e.deviceId)).map((e) => e.state)).toEqual([
      'canceled',
      'canceled',
      'canceled',
      'canceled',
    ]);
    expect(
      installsOf([good, bad], job.id)
        .map((t) => t.deviceId)
        .sort(),
    ).toEqual(devices.slice(0, 4).sort());
    const log = (await (await h.api(`/api/jobs/${job.id}/events?after=0`)).json()) as {
      events: { message: string }[];
    };
    expect(log.events.some((e) => e.message.includes('aborted by the rollout rule'))).toBe(true);
    // The same summary is on the job's retained status topic, as a browser sees it.
    const status = await retainedStatus(job.id);
    expect(status).toMatchObject({
      state: 'aborted',
      counts: done.counts,
      errorCounts: done.errorCounts,
      abortReason: done.abortReason,
    });
    expect(status.seq).toBeGreaterThanOrEqual(done.seq);
  },
  SLOW,
);

/** The retained `fleetflash/jobs/<id>/status` message, read over MQTT-over-WebSocket with viewer credentials. */
async function retainedStatus(jobId: string): Promise<JobRecord> {
  const res = await h.api('/api/mqtt-credentials', { method: 'POST', token: h.viewerToken });
  const creds = (await res.json()) as {
    url: string;
    username: string;
    password: string;
    clientIdPrefix: string;
  };
  const client = connectMqtt(creds.url, {
    username: creds.username,
    password: creds.password,
    clientId: `${creds.clientIdPrefix}status_${jobId}`,
  });
  try {
    await waitConnected(client);
    const first = new Promise<JobRecord>((resolve) =>
      client.once('message', (_t, p) => resolve(JSON.parse(p.toString()) as JobRecord)),
    );
    await client.subscribeAsync(`fleetflash/jobs/${jobId}/status`, { qos: 1 });
    return await first;
  } finally {
    await client.endAsync();
  }
}

describe('retries', () => {
  test(
    'a device off the bus at preflight is retried after the backoff and then updated; the install went out once',
    async () => {
      const fleet = await h.addFleet({ sites: 1, salt: 'rollout-retry', ...ONLY_MPPTS(1) });
      const device = fleet.sites[0].devices.find((d) => d.service === 'solarcharger')!;
      device.online = false;
      const job = await launchJob(h, {
        firmwareId: image.id,
        devices: [device.deviceId],
        retry: { maxAttempts: 3, backoffMs: 300 },
        timeouts: { preflightMs: 1000 },
      });
      expect(job.retry).toEqual({ maxAttempts: 3, backoffMs: 300 });
      const waiting = await jobWhere(
        h,
        job.id,
        (v) => (v.executions[0].retries ?? 0) >= 1,
        'the first retry',
      );
      device.online = true;
      expect(waiting.executions[0]).toMatchObject({
        state: 'queued',
        installSentAt: null,
        installAccepted: false,
      });
      expect(['timeout-preflight', 'device-offline']).toContain(waiting.executions[0].error?.code);
      const { job: done, executions } = await jobFinished(h, job.id);
      expect(executions[0]).toMatchObject({
        state: 'succeeded',
        retries: 1,
        error: null,
        toVersion: image.version,
      });
      expect(done.release.retries).toBe(1);
      expect(done.errorCounts).toEqual({});
      expect(fleet.truth.installCount(device.deviceId, executions[0].executionId)).toBe(1);
      expect(device.version).toBe(image.version);
    },
    SLOW,
  );

  test(
    'when every attempt finds the device unreachable the execution ends after maxAttempts, never sending the install',
    async () => {
      const fleet = await h.addFleet({ sites: 1, salt: 'rollout-retry-out', ...ONLY_MPPTS(1) });
      const device = fleet.sites[0].devices.find((d) => d.service === 'solarcharger')!;
      device.online = false;
      try {
        const job = await launchJob(h, {
          firmwareId: image.id,
          devices: [device.deviceId],
          retry: { maxAttempts: 2, backoffMs: 200 },
          timeouts: { preflightMs: 600 },
        });
        const { job: done, executions } = await jobFinished(h, job.id);
        expect(executions[0]).toMatchObject({
          state: 'timed_out',
          retries: 1,
          attempt: 2,
          error: { code: 'timeout-preflight' },
        });
        expect(done.errorCounts).toEqual({ 'timeout-preflight': 1 });
        expect(installRequestsOf(fleet, job.id)).toBe(0);
      } finally {
        device.online = true;
      }
    },
    SLOW,
  );

  test(
    'a failure after the device accepted the install is never retried',
    async () => {
      const device = solarChargers(bad)[5];
      const job = await launchJob(h, {
        firmwareId: image.id,
        devices: [device],
        retry: { maxAttempts: 5, backoffMs: 100 },
      });
      const { job: done, executions } = await jobFinished(h, job.id);
      expect(executions[0]).toMatchObject({
        state: 'failed',
        installAccepted: true,
        retries: 0,
        error: { code: 'checksum-mismatch' },
      });
      expect(done.release.retries).toBe(0);
      expect(bad.truth.installCount(device, executions[0].executionId)).toBe(1);
      expect(bad.truth.acceptedCount(device, executions[0].executionId)).toBe(1);
    },
    SLOW,
  );
});

describe('launch checks', () => {
  let older: Fleet;
  let same: Fleet;
  let newer: Fleet;
  beforeAll(async () => {
    older = await h.addFleet({
      sites: 1,
      salt: 'rollout-v-old',
      ...ONLY_MPPTS(1),
      initialVersions: { solarcharger: 'v1.64' },
    });
    same = await h.addFleet({
      sites: 1,
      salt: 'rollout-v-same',
      ...ONLY_MPPTS(1),
      initialVersions: { solarcharger: 'v1.67' },
    });
    newer = await h.addFleet({
      sites: 1,
      salt: 'rollout-v-new',
      ...ONLY_MPPTS(1),
      initialVersions: { solarcharger: 'v1.68' },
    });
  });

  test(
    'misfits and devices not behind the image are rejected with a reason; the rest runs',
    async () => {
      const [o, s, n] = [older, same, newer].map((f) => solarChargers(f)[0]);
      const gx = older.devices().find((d) => d.service === 'platform')!.deviceId;
      const job = await launchJob(h, { firmwareId: image.id, devices: [o, s, n, gx] });
      expect(job.counts).toMatchObject({ queued: 1, rejected: 3 });
      expect(job.errorCounts).toEqual({ 'not-newer': 2, incompatible: 1 });
      expect(job.release.eligible).toBe(1);
      const { job: done, executions } = await jobFinished(h, job.id);
      expect(done.state).toBe('completed');
      const byDevice = new Map(executions.map((e) => [e.deviceId, e]));
      expect(byDevice.get(o)).toMatchObject({ state: 'succeeded', fromVersion: 'v1.64', toVersion: 'v1.67' });
      expect(byDevice.get(s)).toMatchObject({
        state: 'rejected',
        error: { code: 'not-newer' },
        installAccepted: false,
      });
      expect(byDevice.get(n)).toMatchObject({ state: 'rejected', error: { code: 'not-newer' } });
      expect(byDevice.get(gx)).toMatchObject({ state: 'rejected', error: { code: 'incompatible' } });
      expect(installRequestsOf([older, same, newer], job.id)).toBe(1);
      // Each device's history records its outcome, rejections at launch included.
      const history = (await (await h.api(`/api/devices/${n}`)).json()) as { history: HistoryEntry[] };
      expect(history.history[0]).toMatchObject({
        jobId: job.id,
        state: 'rejected',
        errorCode: 'not-newer',
        fromVersion: 'v1.68',
        toVersion: 'v1.67',
      });
    },
    SLOW,
  );

  test(
    'allowSameVersion and allowDowngrade let those devices run',
    async () => {
      const [s, n] = [same, newer].map((f) => solarChargers(f)[0]);
      const job = await launchJob(h, {
        firmwareId: image.id,
        devices: [s, n],
        allowSameVersion: true,
        allowDowngrade: true,
      });
      expect(job).toMatchObject({ allowSameVersion: true, allowDowngrade: true });
      const { executions } = await jobFinished(h, job.id);
      expect(executions.map((e) => e.state)).toEqual(['succeeded', 'succeeded']);
      expect(newer.devices().find((d) => d.deviceId === n)?.version).toBe('v1.67');
    },
    SLOW,
  );

  test('422 only when no device is left: all misfits, or none behind the image', async () => {
    const jobsBefore = ((await (await h.api('/api/jobs')).json()) as { jobs: unknown[] }).jobs.length;
    const gx = same.devices().find((d) => d.service === 'platform')!.deviceId;
    const misfit = await h.api('/api/jobs', {
      method: 'POST',
      json: { firmwareId: image.id, devices: [gx] },
    });
    expect(misfit.status).toBe(422);
    expect(((await misfit.json()) as { error: { code: string } }).error.code).toBe('incompatible_product');
    const current = await h.api('/api/jobs', {
      method: 'POST',
      json: { firmwareId: image.id, devices: [solarChargers(same)[0], gx] },
    });
    expect(current.status).toBe(422);
    const body = (await current.json()) as {
      error: { code: string; details: { rejected: { deviceId: string; code: string }[] } };
    };
    expect(body.error.code).toBe('not_newer');
    expect(body.error.details.rejected.map((r) => r.code).sort()).toEqual(['incompatible', 'not-newer']);
    expect(((await (await h.api('/api/jobs')).json()) as { jobs: unknown[] }).jobs).toHaveLength(jobsBefore);
  });
});
