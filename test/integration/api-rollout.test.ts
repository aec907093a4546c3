/**
 * The rollout side of the REST API against real Redis (api role only, so nothing is released):
 * the launch request's rollout options, filter targets resolved against the inventory, launch-time
 * rejections, a 10,000-device launch answering at once, and deleting firmware images.
 */
import type { DeviceRecord } from '../../src/protocol/index.js';
import { ApiHarness, call, OPERATOR_TOKEN, VIEWER_TOKEN, type ApiResponse } from '../helpers/api-harness.js';
import { device, image, SMARTSHUNT, SMARTSOLAR, upload } from '../helpers/api-fixtures.js';

let h: ApiHarness;
let mppt: string;
let shuntImage: string;
const siteA = 'a0000000000a';
const siteB = 'b0000000000b';
const inventory: DeviceRecord[] = [
  device(siteA, 'solarcharger', 256, SMARTSOLAR, 'v1.59'),
  device(siteA, 'solarcharger', 257, SMARTSOLAR, 'v1.61'),
  device(siteA, 'battery', 512, SMARTSHUNT, 'v4.12'),
  device(siteB, 'solarcharger', 256, SMARTSOLAR, 'v1.61'),
  device(siteB, 'solarcharger', 257, SMARTSOLAR, 'v1.67'),
  device(siteB, 'solarcharger', 258, SMARTSOLAR, 'v1.70'),
];
const id = (site: string, service: string, inst: number) => `${site}.${service}.${inst}`;

/** A fleet of `n` MPPTs over n/4 sites, with 12-hex portal ids derived from `salt`. */
function bigFleet(n: number, salt: number): DeviceRecord[] {
  return Array.from({ length: n }, (_, i) => {
    const site = (salt * 0x100000 + Math.floor(i / 4)).toString(16).padStart(12, '0');
    return device(site, 'solarcharger', 256 + (i % 4), SMARTSOLAR, 'v1.59');
  });
}

beforeAll(async () => {
  h = await ApiHarness.start({ MAX_DEVICES_PER_JOB: '20000' });
  await h.deps.devices.upsert(inventory);
  const res = await upload(h.baseUrl, image(4096).bytes, { version: 'v1.67', products: '0xA058' });
  expect(res.status).toBe(201);
  mppt = res.body.firmware.id;
  const shunt = await upload(h.baseUrl, image(2048).bytes, { version: 'v4.19', products: '0xA389' });
  shuntImage = shunt.body.firmware.id;
});

afterAll(async () => {
  await h.close();
});

const launch = (json: unknown) => call(h.baseUrl, 'POST', '/api/jobs', { token: OPERATOR_TOKEN, json });

function expectError(res: ApiResponse, status: number, code: string): void {
  expect([res.status, res.body?.error?.code]).toEqual([status, code]);
}

describe('the launch request', () => {
  test('accepts every rollout option and returns them on the job', async () => {
    const body = {
      firmwareId: mppt,
      devices: [id(siteA, 'solarcharger', 256)],
      rollout: { maxConcurrent: 50, perMinute: 100, waves: { canary: '5%', successThresholdPercent: 95 } },
      abort: { failureThresholdPercent: 10, minExecuted: 20 },
      schedule: {
        startAt: '2026-04-01T00:00:00Z',
        window: { start: '22:00', end: '04:00', tz: 'Europe/Amsterdam' },
      },
      retry: { maxAttempts: 4 },
    };
    const res = await launch(body);
    expect(res.status).toBe(202);
    expect(res.body.job).toMatchObject({
      rollout: body.rollout,
      abort: body.abort,
      schedule: body.schedule,
      retry: { maxAttempts: 4, backoffMs: 10_000 },
      allowDowngrade: false,
      allowSameVersion: false,
      target: { kind: 'devices', count: 1 },
      errorCounts: {},
      abortReason: null,
      release: { eligible: 1, released: 0, inFlight: 0, retries: 0, wave: null, canarySize: 0 },
    });
  });

  test.each([
    ['devices and filter together', { devices: [id(siteA, 'solarcharger', 256)], filter: {} }, 'body'],
    ['neither devices nor filter', {}, 'body'],
    [
      'maxConcurrent 0',
      { devices: [id(siteA, 'solarcharger', 256)], rollout: { maxConcurrent: 0 } },
      'body.rollout.maxConcurrent',
    ],
    [
      'a misspelt rollout option',
      { devices: [id(siteA, 'solarcharger', 256)], rollout: { maxConcurent: 5 } },
      'body.rollout',
    ],
    [
      'a canary of 100%',
      {
        devices: [id(siteA, 'solarcharger', 256)],
        rollout: { waves: { canary: '100%', successThresholdPercent: 90 } },
      },
      'body.rollout.waves.canary',
    ],
    [
      'a canary of 0 devices',
      {
        devices: [id(siteA, 'solarcharger', 256)],
        rollout: { waves: { canary: 0, successThresholdPercent: 90 } },
      },
      'body.rollout.waves.canary',
    ],
    [
      'a success threshold above 100',
      {
        devices: [id(siteA, 'solarcharger', 256)],
        rollout: { waves: { canary: 1, successThresholdPercent: 101 } },
      },
      'body.rollout.waves.successThresholdPercent',
    ],
    [
      'a failure threshold of 0',
      { devices: [id(siteA, 'solarcharger', 256)], abort: { failureThresholdPercent: 0, minExecuted: 1 } },
      'body.abort.failureThresholdPercent',
    ],
    [
      'an abort rule without minExecuted',
      { devices: [id(siteA, 'solarcharger', 256)], abort: { failureThresholdPercent: 10 } },
      'body.abort.minExecuted',
    ],
    [
      'a window of no length',
      { devices: [id(siteA, 'solarcharger', 256)], schedule: { window: { start: '02:00', end: '02:00' } } },
      'body.schedule.window',
    ],
    [
      'a window at 25:00',
      { devices: [id(siteA, 'solarcharger', 256)], schedule: { window: { start: '25:00', end: '02:00' } } },
      'body.schedule.window.start',
    ],
    [
      'an unknown time zone',
      {
        devices: [id(siteA, 'solarcharger', 256)],
        schedule: { window: { start: '01:00', end: '02:00', tz: 'Mars/Base' } },
      },
      'body.schedule.window.tz',
    ],
    [
      'a start time without a zone',
      { devices: [id(siteA, 'solarcharger', 256)], schedule: { startAt: '2026-04-01 10:00' } },
      'body.schedule.startAt',
    ],
    [
      '11 attempts',
      { devices: [id(siteA, 'solarcharger', 256)], retry: { maxAttempts: 11 } },
      'body.retry.maxAttempts',
    ],
    [
      'a filter product that is no product id',
      { filter: { products: ['banana'] } },
      'body.filter.products.0',
    ],
    ['a filter version that is no version', { filter: { versions: ['1.59'] } }, 'body.filter.versions.0'],
  ])('400 for %s', async (_what, extra, where) => {
    const jobs = await h.jobCount();
    const res = await launch({ firmwareId: mppt, ...extra });
    expectError(res, 400, 'validation_failed');
    expect(res.body.error.details.issues[0].path).toBe(where);
    expect(await h.jobCount()).toBe(jobs);
  });
});

describe('filter targets, resolved at launch', () => {
  test('by default the image products: every MPPT; launch checks still apply', async () => {
    const res = await launch({ firmwareId: mppt, filter: {} });
    expect(res.status).toBe(202);
    const job = res.body.job;
    expect(job.target).toEqual({ kind: 'filter', filter: {}, matched: 5 });
    expect(job.counts).toMatchObject({ queued: 3, rejected: 2 });
    expect(job.errorCounts).toEqual({ 'not-newer': 2 });
    // The resolved devices are the executions; the release order is by device id.
    const executions = await h.deps.jobs.executions(job.id);
    expect(executions.map((e) => e.deviceId)).toHaveLength(5);
    expect(await h.redis.lrange(h.keys.jobOrder(job.id), 0, -1)).toEqual([
      id(siteA, 'solarcharger', 256),
      id(siteA, 'solarcharger', 257),
      id(siteB, 'solarcharger', 256),
    ]);
  });

  test('sites and versions narrow it', async () => {
    const res = await launch({ firmwareId: mppt, filter: { sites: [siteB], versions: ['v1.61', 'v1.59'] } });
    expect(res.status).toBe(202);
    expect(res.body.job.total).toBe(1);
    expect((await h.deps.jobs.executions(res.body.job.id)).map((e) => e.deviceId)).toEqual([
      id(siteB, 'solarcharger', 256),
    ]);
  });

  test('an explicit product the image does not fit is rejected per device', async () => {
    const res = await launch({ firmwareId: mppt, filter: { products: ['0xA058', 0xa389], sites: [siteA] } });
    expect(res.status).toBe(202);
    expect(res.body.job.counts).toMatchObject({ queued: 2, rejected: 1 });
    expect(res.body.job.errorCounts).toEqual({ incompatible: 1 });
  });

  test('422 when nothing matches, or nothing is left to update', async () => {
    expectError(
      await launch({ firmwareId: mppt, filter: { sites: ['c0000000000c'] } }),
      422,
      'no_matching_devices',
    );
    expectError(await launch({ firmwareId: mppt, filter: { versions: ['v1.70'] } }), 422, 'not_newer');
    expectError(
      await launch({ firmwareId: shuntImage, filter: { products: [SMARTSOLAR] } }),
      422,
      'incompatible_product',
    );
  });

  test('10,000 devices: 202 at once, by filter and by list', async () => {
    const fleet = bigFleet(10_000, 7);
    await h.deps.devices.upsert(fleet);
    const sites = [...new Set(fleet.map((d) => d.portalId))];
    let t = performance.now();
    const byFilter = await launch({ firmwareId: mppt, filter: { sites } });
    const filterMs = performance.now() - t;
    expect(byFilter.status).toBe(202);
    expect(byFilter.body.job).toMatchObject({ total: 10_000, target: { kind: 'filter', matched: 10_000 } });
    // The job record travels with every status update: a long site list is recorded cut, with its length.
    expect(byFilter.body.job.target.filter).toEqual({ sites: sites.slice(0, 20), sitesTotal: 2500 });
    t = performance.now();
    const byList = await launch({
      firmwareId: mppt,
      devices: fleet.map((d) => d.deviceId),
      rollout: { maxConcurrent: 100 },
    });
    const listMs = performance.now() - t;
    expect(byList.status).toBe(202);
    expect(byList.body.job.release.eligible).toBe(10_000);
    expect(await h.queuedCount()).toBe(0);
    // Nothing per device beyond one Redis transaction: well under a second on an idle machine; the
    // bound is generous for a loaded CI box, the structural check above is the strict one.
    expect(filterMs).toBeLessThan(8000);
    expect(listMs).toBeLessThan(8000);
    // A whole-inventory scan (no site list) resolves the same fleet.
    const scan = await launch({ firmwareId: mppt, filter: { versions: ['v1.59'] } });
    expect(scan.body.job.target.matched).toBe(10_001);
  }, 60_000);

  test('a filter matching more than MAX_DEVICES_PER_JOB → 422 too_many_devices', async () => {
    const limited = await ApiHarness.start({ MAX_DEVICES_PER_JOB: '3' });
    try {
      await limited.deps.devices.upsert(bigFleet(4, 9));
      const up = await upload(limited.baseUrl, image(256).bytes, { version: 'v1.67', products: '0xA058' });
      const res = await call(limited.baseUrl, 'POST', '/api/jobs', {
        token: OPERATOR_TOKEN,
        json: { firmwareId: up.body.firmware.id, filter: {} },
      });
      expectError(res, 422, 'too_many_devices');
      expect(res.body.error.details).toEqual({ matched: 4, max: 3 });
      expect(await limited.jobCount()).toBe(0);
    } finally {
      await limited.close();
    }
  });
});

describe('DELETE /api/firmware/:id', () => {
  test('refused with 409 while a job that has not finished uses it; allowed once it has', async () => {
    const img = image(1024);
    const up = await upload(h.baseUrl, img.bytes, { version: 'v1.66', products: '0xA058' });
    const fw = up.body.firmware.id;
    const job = await launch({ firmwareId: fw, devices: [id(siteA, 'solarcharger', 256)] });
    expect(job.status).toBe(202);
    const refused = await call(h.baseUrl, 'DELETE', `/api/firmware/${fw}`, { token: OPERATOR_TOKEN });
    expectError(refused, 409, 'firmware_in_use');
    expect(refused.body.error.details.jobs).toEqual([job.body.job.id]);
    expect((await call(h.baseUrl, 'GET', `/api/firmware/${fw}`, { token: VIEWER_TOKEN })).status).toBe(200);

    expect(
      (await call(h.baseUrl, 'POST', `/api/jobs/${job.body.job.id}/abort`, { token: OPERATOR_TOKEN })).status,
    ).toBe(200);
    const deleted = await call(h.baseUrl, 'DELETE', `/api/firmware/${fw}`, { token: OPERATOR_TOKEN });
    expect(deleted.status).toBe(204);
    expect((await call(h.baseUrl, 'GET', `/api/firmware/${fw}`, { token: VIEWER_TOKEN })).status).toBe(404);
    expect(await h.deps.firmware.fileSize(fw)).toBeNull();
    expectError(
      await launch({ firmwareId: fw, devices: [id(siteA, 'solarcharger', 256)] }),
      404,
      'firmware_not_found',
    );
    // Content-addressed: the same bytes can be uploaded again.
    expect((await upload(h.baseUrl, img.bytes, { version: 'v1.66', products: '0xA058' })).status).toBe(201);
  });

  test('viewer → 403, unknown → 404, malformed id → 404', async () => {
    expectError(
      await call(h.baseUrl, 'DELETE', `/api/firmware/${mppt}`, { token: VIEWER_TOKEN }),
      403,
      'forbidden',
    );
    expectError(
      await call(h.baseUrl, 'DELETE', `/api/firmware/${'e'.repeat(64)}`, { token: OPERATOR_TOKEN }),
      404,
      'firmware_not_found',
    );
    expectError(
      await call(h.baseUrl, 'DELETE', '/api/firmware/nope', { token: OPERATOR_TOKEN }),
      404,
      'firmware_not_found',
    );
    expect((await call(h.baseUrl, 'GET', `/api/firmware/${mppt}`, { token: VIEWER_TOKEN })).status).toBe(200);
  });

  test('a reservation left by a launch that died half-way does not block forever', async () => {
    const up = await upload(h.baseUrl, image(512).bytes, { version: 'v1.65', products: '0xA058' });
    const fw = up.body.firmware.id;
    await h.redis.zadd(h.keys.firmwareJobs(fw), Date.now(), 'jdiedhalfway1');
    expectError(
      await call(h.baseUrl, 'DELETE', `/api/firmware/${fw}`, { token: OPERATOR_TOKEN }),
      409,
      'firmware_in_use',
    );
    await h.redis.zadd(h.keys.firmwareJobs(fw), Date.now() - 120_000, 'jdiedhalfway1');
    expect((await call(h.baseUrl, 'DELETE', `/api/firmware/${fw}`, { token: OPERATOR_TOKEN })).status).toBe(
      204,
    );
  });
});
