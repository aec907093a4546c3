/**
 * The audit trail (every mutating call of an authenticated operator: who, what, when, from where,
 * how it ended; never a secret), `GET /api/audit` with paging, the cap, and browser MQTT credentials
 * scoped to jobs.
 */
import { AuditLog, type AuditEntry } from '../../src/audit/audit-log.js';
import { createKeys } from '../../src/store/keys.js';
import { device, image, SMARTSOLAR, upload } from '../helpers/api-fixtures.js';
import { ApiHarness, call, OPERATOR_TOKEN, VIEWER_TOKEN } from '../helpers/api-harness.js';

let h: ApiHarness;
const site = 'c0619ab1d2e3';
const solar = [256, 257].map((i) => device(site, 'solarcharger', i, SMARTSOLAR, 'v1.56'));
const LOCALHOST = expect.stringMatching(/127\.0\.0\.1$/);

beforeAll(async () => {
  h = await ApiHarness.start();
  await h.deps.devices.upsert(solar);
});

afterAll(async () => {
  await h.close();
});

async function auditPage(
  query = '',
  token = OPERATOR_TOKEN,
): Promise<{ entries: AuditEntry[]; nextBefore: number | null }> {
  const res = await call(h.baseUrl, 'GET', `/api/audit${query}`, { token });
  expect(res.status).toBe(200);
  return res.body;
}

/** The entry of the request whose answer carried `res`'s X-Request-Id. */
async function entryOf(res: { headers: Headers }): Promise<AuditEntry> {
  const id = res.headers.get('x-request-id');
  const { entries } = await auditPage('?limit=1000');
  const found = entries.filter((e) => e.requestId === id);
  expect(found).toHaveLength(1);
  return found[0];
}

describe('the audit trail records every mutating call', () => {
  let firmwareId: string;
  let jobId: string;

  test('firmware upload: actor, role, action, image id and version, status, outcome, address, time', async () => {
    const before = Date.now();
    const img = image(2048);
    const res = await upload(h.baseUrl, img.bytes, { version: 'v1.57', products: '0xA058' });
    expect(res.status).toBe(201);
    firmwareId = res.body.firmware.id;
    expect(await entryOf(res)).toEqual({
      id: expect.any(Number),
      at: expect.any(String),
      actor: 'operator-2',
      role: 'operator',
      action: 'firmware.upload',
      method: 'POST',
      path: '/api/firmware',
      target: { firmwareId: img.sha256, firmwareVersion: 'v1.57' },
      status: 201,
      outcome: 'succeeded',
      requestId: res.headers.get('x-request-id'),
      remoteAddress: LOCALHOST,
    });
    expect(Date.parse((await entryOf(res)).at)).toBeGreaterThanOrEqual(before - 1000);
  });

  test('job launch, abort and cancel name the job (and device)', async () => {
    const launched = await call(h.baseUrl, 'POST', '/api/jobs', {
      token: OPERATOR_TOKEN,
      json: { firmwareId, devices: solar.map((d) => d.deviceId) },
    });
    expect(launched.status).toBe(202);
    jobId = launched.body.job.id;
    expect(await entryOf(launched)).toMatchObject({
      action: 'job.launch',
      target: { jobId, firmwareId, devices: 2 },
      status: 202,
      outcome: 'succeeded',
    });

    const cancel = await call(h.baseUrl, 'POST', `/api/jobs/${jobId}/devices/${solar[0].deviceId}/cancel`, {
      token: OPERATOR_TOKEN,
    });
    expect(await entryOf(cancel)).toMatchObject({
      action: 'execution.cancel',
      target: { jobId, deviceId: solar[0].deviceId },
      status: cancel.status,
    });

    const abort = await call(h.baseUrl, 'POST', `/api/jobs/${jobId}/abort`, { token: OPERATOR_TOKEN });
    expect(abort.status).toBe(200);
    expect(await entryOf(abort)).toMatchObject({ action: 'job.abort', target: { jobId }, status: 200 });
  });

  test('site registration names the sites, never their secrets; bulk lists are capped with a count', async () => {
    const one = await call(h.baseUrl, 'POST', '/api/sites', {
      token: OPERATOR_TOKEN,
      json: { portalId: 'aaaaaaaaaaaa' },
    });
    expect(one.status).toBe(201);
    const entry = await entryOf(one);
    expect(entry).toMatchObject({
      action: 'sites.register',
      target: { portalIds: ['aaaaaaaaaaaa'], sites: 1 },
    });
    expect(JSON.stringify(entry)).not.toContain(one.body.secret);

    const ids = Array.from({ length: 150 }, (_, i) => `b${i.toString(16).padStart(11, '0')}`);
    const bulk = await call(h.baseUrl, 'POST', '/api/sites', {
      token: OPERATOR_TOKEN,
      json: { sites: ids.map((portalId) => ({ portalId })) },
    });
    expect(bulk.status).toBe(201);
    const bulkEntry = await entryOf(bulk);
    expect(bulkEntry.target).toEqual({ portalIds: ids.slice(0, 100), sites: 150 });
    for (const s of bulk.body.sites as { secret: string }[])
      expect(JSON.stringify(bulkEntry)).not.toContain(s.secret);
  });

  test('issuing browser credentials is recorded with the job scope, never the token', async () => {
    const res = await call(h.baseUrl, 'POST', '/api/mqtt-credentials', {
      token: VIEWER_TOKEN,
      json: { jobs: [jobId] },
    });
    expect(res.status).toBe(200);
    const entry = await entryOf(res);
    expect(entry).toMatchObject({
      actor: 'viewer-1',
      role: 'viewer',
      action: 'mqtt-credentials.issue',
      target: { jobs: [jobId] },
      outcome: 'succeeded',
    });
    expect(JSON.stringify(entry)).not.toContain(res.body.password);
  });

  test('refused calls are recorded too: wrong role, invalid body, unknown route', async () => {
    const forbidden = await call(h.baseUrl, 'POST', '/api/jobs', { token: VIEWER_TOKEN, json: {} });
    expect(forbidden.status).toBe(403);
    expect(await entryOf(forbidden)).toMatchObject({
      actor: 'viewer-1',
      action: 'job.launch',
      status: 403,
      outcome: 'refused',
    });
    const invalid = await call(h.baseUrl, 'POST', '/api/jobs', {
      token: OPERATOR_TOKEN,
      json: { firmwareId: 'x' },
    });
    expect(await entryOf(invalid)).toMatchObject({
      action: 'job.launch',
      status: 400,
      outcome: 'refused',
      target: {},
    });
    const unknown = await call(h.baseUrl, 'DELETE', '/api/jobs/j0000000001', { token: OPERATOR_TOKEN });
    expect(await entryOf(unknown)).toMatchObject({
      action: 'other',
      method: 'DELETE',
      path: '/api/jobs/j0000000001',
      status: 404,
    });
    const unknownImage = 'f'.repeat(64);
    const del = await call(h.baseUrl, 'DELETE', `/api/firmware/${unknownImage}`, { token: OPERATOR_TOKEN });
    expect(await entryOf(del)).toMatchObject({
      action: 'firmware.delete',
      target: { firmwareId: unknownImage },
      status: del.status,
      outcome: 'refused',
    });
    const badJob = await call(h.baseUrl, 'POST', '/api/jobs/..%2F..%2Fx/abort', { token: OPERATOR_TOKEN });
    expect(await entryOf(badJob)).toMatchObject({ action: 'job.abort', target: {}, status: 404 });
  });

  test('reads and calls without a valid token are not recorded; no token ever reaches the trail', async () => {
    const { entries: before } = await auditPage('?limit=1000');
    await call(h.baseUrl, 'GET', '/api/jobs', { token: OPERATOR_TOKEN });
    await call(h.baseUrl, 'POST', '/api/jobs', { token: 'not-a-real-token-0123456789', json: {} });
    await call(h.baseUrl, 'POST', '/api/jobs', { json: {} });
    const { entries: after } = await auditPage('?limit=1000');
    expect(after.length).toBe(before.length);
    const text = JSON.stringify(after);
    for (const secret of [OPERATOR_TOKEN, VIEWER_TOKEN, 'not-a-real-token'])
      expect(text).not.toContain(secret);
  });
});

describe('GET /api/audit', () => {
  test('operators only: a viewer gets 403 (and the attempt is not itself a mutating call)', async () => {
    const res = await call(h.baseUrl, 'GET', '/api/audit', { token: VIEWER_TOKEN });
    expect([res.status, res.body.error.code]).toEqual([403, 'forbidden']);
    expect((await call(h.baseUrl, 'GET', '/api/audit')).status).toBe(401);
  });

  test('newest first, paged with limit and before, without gaps or repeats', async () => {
    const all = (await auditPage('?limit=1000')).entries;
    expect(all.length).toBeGreaterThan(5);
    const ids = all.map((e) => e.id);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    const seen: number[] = [];
    let before: number | null = null;
    do {
      const page: { entries: AuditEntry[]; nextBefore: number | null } = await auditPage(
        `?limit=3${before === null ? '' : `&before=${before}`}`,
      );
      seen.push(...page.entries.map((e) => e.id));
      before = page.nextBefore;
    } while (before !== null);
    expect(seen).toEqual(ids);
  });

  test.each([
    ['?limit=0'],
    ['?limit=1001'],
    ['?before=-1'],
    ['?before=abc'],
    ['?since=1'],
    ['?limit=1&limit=2'],
  ])('%s → 400 validation_failed', async (query) => {
    const res = await call(h.baseUrl, 'GET', `/api/audit${query}`, { token: OPERATOR_TOKEN });
    expect([res.status, res.body.error.code]).toEqual([400, 'validation_failed']);
  });

  test('is in the OpenAPI document, operator-only', async () => {
    const doc = (await call(h.baseUrl, 'GET', '/api/openapi.json')).body;
    const op = doc.paths['/api/audit'].get;
    expect(op['x-required-role']).toBe('operator');
    expect(op.parameters.map((p: { name: string }) => p.name)).toEqual(['limit', 'before']);
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '403']));
  });
});

describe('AuditLog', () => {
  test('keeps the newest maxEntries, with ids that keep increasing', async () => {
    const keys = createKeys(`${h.config.queuePrefix}-cap`);
    const log = new AuditLog(h.redis, keys, 5);
    try {
      for (let i = 0; i < 8; i++) {
        void log.record({
          at: new Date().toISOString(),
          actor: `op-${i}`,
          role: 'operator',
          action: 'other',
          method: 'POST',
          path: '/api/x',
          target: {},
          status: 404,
          outcome: 'refused',
          requestId: `r${i}`,
          remoteAddress: null,
        });
      }
      await log.settled();
      const entries = await log.list(100);
      expect(entries.map((e) => e.actor)).toEqual(['op-7', 'op-6', 'op-5', 'op-4', 'op-3']);
      expect(entries.map((e) => e.id)).toEqual([8, 7, 6, 5, 4]);
      expect((await log.list(2, 6)).map((e) => e.id)).toEqual([5, 4]);
    } finally {
      await h.redis.del(keys.audit(), keys.auditSeq());
    }
  });
});

describe('POST /api/mqtt-credentials scoped to jobs', () => {
  const X = 'jaaaaaaaaaa1';
  const Y = 'jaaaaaaaaaa2';

  test('{jobs} → a token for exactly those jobs (duplicates dropped); no body → every job', async () => {
    const scoped = await call(h.baseUrl, 'POST', '/api/mqtt-credentials', {
      token: VIEWER_TOKEN,
      json: { jobs: [X, Y, X] },
    });
    expect(scoped.status).toBe(200);
    expect(scoped.body.jobs).toEqual([X, Y]);
    expect(h.deps.tokens.verifyBrowserToken(scoped.body.password)).toMatchObject({
      subject: 'viewer-1',
      jobs: [X, Y],
    });

    for (const opts of [{}, { json: {} }, { body: '', headers: { 'content-type': 'application/json' } }]) {
      const all = await call(h.baseUrl, 'POST', '/api/mqtt-credentials', { token: OPERATOR_TOKEN, ...opts });
      expect(all.status).toBe(200);
      expect(all.body).toMatchObject({
        jobs: '*',
        username: 'operator-2',
        clientIdPrefix: 'web-operator-2-',
      });
      expect(h.deps.tokens.verifyBrowserToken(all.body.password)).toMatchObject({
        role: 'operator',
        jobs: '*',
      });
    }
  });

  test.each([
    ['a non-job id', { jobs: ['+'] }],
    ['a wildcard', { jobs: ['#'] }],
    ['an empty list', { jobs: [] }],
    ['101 jobs', { jobs: Array.from({ length: 101 }, (_, i) => `j${String(i).padStart(10, '0')}`) }],
    ['an unknown field', { jobs: [X], role: 'operator' }],
    ['jobs as a string', { jobs: X }],
    ['an array body', [X]],
  ])('%s → 400 validation_failed, no token', async (_name, json) => {
    const res = await call(h.baseUrl, 'POST', '/api/mqtt-credentials', { token: VIEWER_TOKEN, json });
    expect([res.status, res.body.error.code, res.body.password]).toEqual([
      400,
      'validation_failed',
      undefined,
    ]);
  });

  test('a body that is not JSON → 415; one over the limit → 413', async () => {
    const text = await call(h.baseUrl, 'POST', '/api/mqtt-credentials', {
      token: VIEWER_TOKEN,
      body: 'jobs=x',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect([text.status, text.body.error.code]).toEqual([415, 'unsupported_media_type']);
    const huge = await call(h.baseUrl, 'POST', '/api/mqtt-credentials', {
      token: VIEWER_TOKEN,
      json: { jobs: [X], pad: 'x'.repeat(20_000) },
    });
    expect([huge.status, huge.body.error.code]).toEqual([413, 'payload_too_large']);
  });
});
