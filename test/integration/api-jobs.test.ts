/**
 * `/api/jobs` against real Redis and BullMQ: a launch writes the job, its executions, its release
 * order and the first log line, and enqueues nothing (the rollout controller releases executions);
 * every bad request answers the exact 4xx and leaves nothing behind.
 */
import { formatExecutionId, jobTopicPrefix } from '../../src/protocol/index.js';
import { ApiHarness, call, OPERATOR_TOKEN, VIEWER_TOKEN } from '../helpers/api-harness.js';
import { device, image, SMARTSHUNT, SMARTSOLAR, upload } from '../helpers/api-fixtures.js';

let h: ApiHarness;
let firmwareId: string;
const site = 'c0619ab1d2e3';
const solar = [256, 257, 258].map((i) => device(site, 'solarcharger', i, SMARTSOLAR, 'v1.56'));
const shunt = device(site, 'battery', 512, SMARTSHUNT, 'v4.10');
const solarIds = solar.map((d) => d.deviceId);

beforeAll(async () => {
  h = await ApiHarness.start();
  await h.deps.devices.upsert([...solar, shunt]);
  const img = image(4096);
  const res = await upload(h.baseUrl, img.bytes, { version: 'v1.57', products: '0xA058' });
  expect(res.status).toBe(201);
  firmwareId = res.body.firmware.id;
});

afterAll(async () => {
  await h.close();
});

const launch = (json: unknown, token: string | null = OPERATOR_TOKEN) =>
  call(h.baseUrl, 'POST', '/api/jobs', { token, json });

describe('POST /api/jobs rejects bad requests and creates nothing', () => {
  let jobsBefore: number;
  let queuedBefore: number;
  beforeEach(async () => {
    jobsBefore = await h.jobCount();
    queuedBefore = await h.queuedCount();
  });
  afterEach(async () => {
    expect(await h.jobCount()).toBe(jobsBefore);
    expect(await h.queuedCount()).toBe(queuedBefore);
  });

  function expectError(res: { status: number; body: unknown }, status: number, code: string): void {
    expect(res.status).toBe(status);
    expect(res.body).toEqual({ error: expect.objectContaining({ code, message: expect.any(String) }) });
  }

  test('malformed JSON → 400 invalid_json', async () => {
    const res = await call(h.baseUrl, 'POST', '/api/jobs', {
      token: OPERATOR_TOKEN,
      body: '{"firmwareId": "abc", "devices": [',
      headers: { 'content-type': 'application/json' },
    });
    expectError(res, 400, 'invalid_json');
  });

  test('unknown fields → 400 validation_failed listing them', async () => {
    const res = await launch({ firmwareId, devices: solarIds, priority: 1 });
    expectError(res, 400, 'validation_failed');
    expect(res.body.error.details.issues).toEqual([
      expect.objectContaining({ path: 'body', code: 'unrecognized_keys' }),
    ]);
  });

  test('unknown field inside timeouts → 400', async () => {
    const res = await launch({ firmwareId, devices: solarIds, timeouts: { flashMs: 1000 } });
    expectError(res, 400, 'validation_failed');
    expect(res.body.error.details.issues[0].path).toBe('body.timeouts');
  });

  test('wrong types → 400 with one issue per field', async () => {
    const res = await launch({ firmwareId: 42, devices: 'all' });
    expectError(res, 400, 'validation_failed');
    const paths = res.body.error.details.issues.map((i: { path: string }) => i.path).sort();
    expect(paths).toEqual(['body.devices', 'body.firmwareId']);
  });

  test('timeouts out of range → 400', async () => {
    const res = await launch({ firmwareId, devices: solarIds, timeouts: { preflightMs: 99, totalMs: 1.5 } });
    expectError(res, 400, 'validation_failed');
    expect(res.body.error.details.issues).toHaveLength(2);
  });

  test('a JSON array instead of an object → 400', async () => {
    expectError(await launch([firmwareId]), 400, 'validation_failed');
  });

  test('empty device list → 400', async () => {
    const res = await launch({ firmwareId, devices: [] });
    expectError(res, 400, 'validation_failed');
    expect(res.body.error.details.issues[0]).toMatchObject({ path: 'body.devices', code: 'too_small' });
  });

  test('more devices than MAX_DEVICES_PER_JOB → 400', async () => {
    const ids = [0, 1, 2, 3, 4, 5].map((i) => `${site}.solarcharger.${300 + i}`);
    const res = await launch({ firmwareId, devices: ids });
    expectError(res, 400, 'validation_failed');
    expect(res.body.error.details.issues[0]).toMatchObject({ path: 'body.devices', code: 'too_big' });
  });

  test('invalid device id → 400 naming its index', async () => {
    const res = await launch({
      firmwareId,
      devices: [solarIds[0], 'C0619AB1D2E3.solarcharger.1', `${site}.fridge.1`],
    });
    expectError(res, 400, 'validation_failed');
    expect(res.body.error.details.issues.map((i: { path: string }) => i.path)).toEqual([
      'body.devices.1',
      'body.devices.2',
    ]);
  });

  test('unknown device → 404 device_not_found', async () => {
    const res = await launch({ firmwareId, devices: [solarIds[0], `${site}.solarcharger.999`] });
    expectError(res, 404, 'device_not_found');
    expect(res.body.error.details).toEqual({ unknown: [`${site}.solarcharger.999`] });
  });

  test('unknown firmware → 404 firmware_not_found', async () => {
    expectError(await launch({ firmwareId: 'f'.repeat(64), devices: solarIds }), 404, 'firmware_not_found');
  });

  test('only devices of another product → 422 incompatible_product', async () => {
    const res = await launch({ firmwareId, devices: [shunt.deviceId] });
    expectError(res, 422, 'incompatible_product');
    expect(res.body.error.details.incompatible).toEqual([{ deviceId: shunt.deviceId, productId: '0xA389' }]);
  });

  test('duplicate devices → 400 duplicate_devices', async () => {
    expectError(await launch({ firmwareId, devices: [solarIds[0], solarIds[0]] }), 400, 'duplicate_devices');
  });

  test('body over 1 MiB → 413 payload_too_large', async () => {
    const res = await call(h.baseUrl, 'POST', '/api/jobs', {
      token: OPERATOR_TOKEN,
      body: JSON.stringify({ firmwareId, devices: solarIds, pad: 'x'.repeat(1024 * 1024) }),
      headers: { 'content-type': 'application/json' },
    });
    expectError(res, 413, 'payload_too_large');
  });

  test('wrong content type → 415', async () => {
    const res = await call(h.baseUrl, 'POST', '/api/jobs', {
      token: OPERATOR_TOKEN,
      body: JSON.stringify({ firmwareId, devices: solarIds }),
      headers: { 'content-type': 'text/plain' },
    });
    expectError(res, 415, 'unsupported_media_type');
  });

  test('no body at all → 415', async () => {
    expectError(
      await call(h.baseUrl, 'POST', '/api/jobs', { token: OPERATOR_TOKEN }),
      415,
      'unsupported_media_type',
    );
  });

  test('missing token → 401 with WWW-Authenticate', async () => {
    const res = await launch({ firmwareId, devices: solarIds }, null);
    expectError(res, 401, 'unauthorized');
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });

  test('wrong token → 401', async () => {
    const res = await launch({ firmwareId, devices: solarIds }, 'not-the-operator-token-at-all');
    expectError(res, 401, 'unauthorized');
    expect(res.headers.get('www-authenticate')).toContain('invalid_token');
  });

  test('viewer launching → 403', async () => {
    expectError(await launch({ firmwareId, devices: solarIds }, VIEWER_TOKEN), 403, 'forbidden');
  });
});

describe('launching and reading a job', () => {
  let jobId: string;

  test('POST /api/jobs → 202 with the job, its topic prefix and Location', async () => {
    const res = await launch({ firmwareId, devices: solarIds, timeouts: { rebootingMs: 120_000 } });
    expect(res.status).toBe(202);
    const job = res.body.job;
    jobId = job.id;
    expect(job).toMatchObject({
      state: 'queued',
      firmwareId,
      firmwareVersion: 'v1.57',
      total: 3,
      topicPrefix: `fleetflash/jobs/${job.id}`,
      createdBy: 'operator-2',
    });
    expect(job.topicPrefix).toBe(jobTopicPrefix(job.id));
    expect(job.counts.queued).toBe(3);
    expect(job.timeouts).toEqual({ ...h.config.defaultTimeouts, rebootingMs: 120_000 });
    expect(res.headers.get('location')).toBe(`/api/jobs/${job.id}`);
  });

  test('nothing is enqueued at launch: the executions wait in the release order for the rollout', async () => {
    expect(await h.queuedCount()).toBe(0);
    expect(await h.redis.lrange(h.keys.jobOrder(jobId), 0, -1)).toEqual(solarIds);
    expect(await h.redis.sismember(h.keys.rollouts(), jobId)).toBe(1);
    expect(await h.queue.getJob(formatExecutionId(jobId, solarIds[0]))).toBeUndefined();
  });

  test('GET /api/jobs/:id → the job with 3 queued executions', async () => {
    const res = await call(h.baseUrl, 'GET', `/api/jobs/${jobId}`, { token: VIEWER_TOKEN });
    expect(res.status).toBe(200);
    expect(res.body.job.id).toBe(jobId);
    expect(res.body.executions).toHaveLength(3);
    for (const e of res.body.executions) {
      expect(e).toMatchObject({
        jobId,
        state: 'queued',
        toVersion: 'v1.57',
        fromVersion: 'v1.56',
        installAccepted: false,
      });
    }
    expect(res.body.executions.map((e: { deviceId: string }) => e.deviceId)).toEqual(solarIds);
  });

  test('GET /api/jobs/:id/events → the "job created" line with seq 1, then nothing after it', async () => {
    const res = await call(h.baseUrl, 'GET', `/api/jobs/${jobId}/events`, { token: VIEWER_TOKEN });
    expect(res.status).toBe(200);
    expect(res.body.events).toHaveLength(1);
    expect(res.body.events[0]).toMatchObject({ seq: 1, jobId, level: 'info', deviceId: null });
    expect(res.body.events[0].message).toContain('job created');
    expect(res.body.nextAfter).toBe(1);
    const next = await call(h.baseUrl, 'GET', `/api/jobs/${jobId}/events?after=1&limit=10`, {
      token: VIEWER_TOKEN,
    });
    expect(next.body).toEqual({ events: [], nextAfter: 1 });
  });

  test('GET /api/jobs lists it; limit and offset page', async () => {
    const second = await launch({ firmwareId, devices: [solarIds[0]] });
    expect(second.status).toBe(202);
    const all = await call(h.baseUrl, 'GET', '/api/jobs', { token: VIEWER_TOKEN });
    expect(all.status).toBe(200);
    expect(all.body.jobs.map((j: { id: string }) => j.id)).toEqual([second.body.job.id, jobId]);
    const page = await call(h.baseUrl, 'GET', '/api/jobs?limit=1&offset=1', { token: VIEWER_TOKEN });
    expect(page.body.jobs.map((j: { id: string }) => j.id)).toEqual([jobId]);
  });

  test('bad paging and event queries → 400', async () => {
    for (const q of [
      '/api/jobs?limit=0',
      '/api/jobs?limit=abc',
      '/api/jobs?offset=-1',
      '/api/jobs?sort=asc',
      `/api/jobs/${jobId}/events?limit=1001`,
      `/api/jobs/${jobId}/events?after=x`,
      `/api/jobs/${jobId}/events?after=1&after=2`,
    ]) {
      const res = await call(h.baseUrl, 'GET', q, { token: VIEWER_TOKEN });
      expect([q, res.status, res.body.error.code]).toEqual([q, 400, 'validation_failed']);
    }
  });

  test('unknown and malformed job ids → 404 job_not_found', async () => {
    for (const p of [
      '/api/jobs/jzzzzzzzzzz',
      '/api/jobs/not-a-job',
      '/api/jobs/jzzzzzzzzzz/events',
      '/api/jobs/%E0%A4%A/events',
    ]) {
      const res = await call(h.baseUrl, 'GET', p, { token: VIEWER_TOKEN });
      expect(res.status).toBe(p.includes('%') ? 400 : 404);
      expect(res.body.error.code).toBe(p.includes('%') ? 'bad_request' : 'job_not_found');
    }
  });
});

describe('POST /api/jobs/:id/abort', () => {
  test('operator → 200 {job, canceled, inFlight} via deps.abort', async () => {
    const created = await launch({ firmwareId, devices: [solarIds[1]] });
    const id = created.body.job.id;
    const res = await call(h.baseUrl, 'POST', `/api/jobs/${id}/abort`, { token: OPERATOR_TOKEN });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      job: expect.objectContaining({ id, state: 'aborted', finishedAt: expect.any(String) }),
      canceled: 1,
      inFlight: 0,
    });
    expect(res.body.job.counts.canceled).toBe(1);
    expect(await h.queue.getJob(`${id}.${solarIds[1]}`)).toBeUndefined();
    expect(h.abortCalls).toContainEqual({ jobId: id, by: 'operator-2' });
    const again = await call(h.baseUrl, 'POST', `/api/jobs/${id}/abort`, { token: OPERATOR_TOKEN });
    expect([again.status, again.body.error.code]).toEqual([409, 'job_finished']);
  });

  test('viewer → 403, unknown job → 404, malformed id → 404; deps.abort is not called for the first and last', async () => {
    const calls = h.abortCalls.length;
    const jobs = await call(h.baseUrl, 'GET', '/api/jobs', { token: VIEWER_TOKEN });
    const id = jobs.body.jobs[0].id;
    expect((await call(h.baseUrl, 'POST', `/api/jobs/${id}/abort`, { token: VIEWER_TOKEN })).status).toBe(
      403,
    );
    const unknown = await call(h.baseUrl, 'POST', '/api/jobs/jzzzzzzzzzz/abort', { token: OPERATOR_TOKEN });
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'job_not_found']);
    const bad = await call(h.baseUrl, 'POST', '/api/jobs/x/abort', { token: OPERATOR_TOKEN });
    expect([bad.status, bad.body.error.code]).toEqual([404, 'job_not_found']);
    expect(h.abortCalls.length).toBe(calls + 1);
  });
});

describe('POST /api/jobs/:id/devices/:deviceId/cancel', () => {
  test('cancels a queued execution once; a second cancel is 409 execution_finished', async () => {
    const created = await launch({ firmwareId, devices: [solarIds[2]] });
    const id = created.body.job.id;
    const res = await call(h.baseUrl, 'POST', `/api/jobs/${id}/devices/${solarIds[2]}/cancel`, { token: OPERATOR_TOKEN });
    expect(res.status).toBe(200);
    expect(res.body.execution).toMatchObject({ state: 'canceled', error: { code: 'canceled' } });
    const again = await call(h.baseUrl, 'POST', `/api/jobs/${id}/devices/${solarIds[2]}/cancel`, { token: OPERATOR_TOKEN });
    expect([again.status, again.body.error.code]).toEqual([409, 'execution_finished']);
  });

  test('past the point of no return → 409, and the execution is untouched', async () => {
    const created = await launch({ firmwareId, devices: [solarIds[0]] });
    const id = created.body.job.id;
    const rec = (await h.deps.jobs.execution(id, solarIds[0]))!;
    const committed = { ...rec, state: 'in_progress' as const, phase: 'preflight' as const, installSentAt: new Date().toISOString(), seq: rec.seq + 1 };
    expect((await h.deps.jobs.update(committed, null)).ok).toBe(true);
    const res = await call(h.baseUrl, 'POST', `/api/jobs/${id}/devices/${solarIds[0]}/cancel`, { token: OPERATOR_TOKEN });
    expect([res.status, res.body.error.code]).toEqual([409, 'past_point_of_no_return']);
    const abort = await call(h.baseUrl, 'POST', `/api/jobs/${id}/abort`, { token: OPERATOR_TOKEN });
    expect(abort.body).toMatchObject({ canceled: 0, inFlight: 1 });
    expect((await h.deps.jobs.execution(id, solarIds[0]))).toMatchObject({ state: 'in_progress', seq: committed.seq });
  });

  test('viewer → 403; unknown execution → 404', async () => {
    const jobs = await call(h.baseUrl, 'GET', '/api/jobs', { token: VIEWER_TOKEN });
    const id = jobs.body.jobs[0].id;
    expect((await call(h.baseUrl, 'POST', `/api/jobs/${id}/devices/${solarIds[0]}/cancel`, { token: VIEWER_TOKEN })).status).toBe(403);
    const unknown = await call(h.baseUrl, 'POST', `/api/jobs/jzzzzzzzzzz/devices/${solarIds[0]}/cancel`, { token: OPERATOR_TOKEN });
    expect(unknown.status).toBe(404);
  });
});
