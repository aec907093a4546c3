/** `/api/devices` with its filters and history, `/api/sites` listing and registration. */
import { ApiHarness, call, OPERATOR_TOKEN, VIEWER_TOKEN } from '../helpers/api-harness.js';
import { CERBO, device, SMARTSHUNT, SMARTSOLAR } from '../helpers/api-fixtures.js';
import type { HistoryEntry } from '../../src/protocol/index.js';

let h: ApiHarness;
const A = 'aaaaaaaaaaa1';
const B = 'bbbbbbbbbbb2';
const C = 'ccccccccccc3'; // has devices but is never registered
const fleet = [
  device(A, 'platform', 0, CERBO, 'v3.70~33'),
  device(A, 'solarcharger', 256, SMARTSOLAR, 'v1.57', { customName: 'Roof East' }),
  device(A, 'battery', 512, SMARTSHUNT, 'v4.10'),
  device(B, 'platform', 0, CERBO, 'v3.60', { online: false }),
  device(B, 'solarcharger', 257, SMARTSOLAR, 'v1.56', { online: false }),
  device(C, 'solarcharger', 258, SMARTSOLAR, 'v1.57'),
];
const ids = (res: { body: { devices: { deviceId: string }[] } }) => res.body.devices.map((d) => d.deviceId);
const list = (query: string) => call(h.baseUrl, 'GET', `/api/devices${query}`, { token: VIEWER_TOKEN });

beforeAll(async () => {
  h = await ApiHarness.start();
  await h.deps.devices.upsert(fleet);
});

afterAll(async () => {
  await h.close();
});

describe('GET /api/devices', () => {
  test('all devices, sorted by id', async () => {
    const res = await list('');
    expect(res.status).toBe(200);
    expect(ids(res)).toEqual(fleet.map((d) => d.deviceId).sort());
    expect(res.body.devices.find((d: { deviceId: string }) => d.deviceId === fleet[0].deviceId)).toEqual(
      fleet[0],
    );
  });

  test.each([
    ['?product=0xA058', [`${A}.solarcharger.256`, `${B}.solarcharger.257`, `${C}.solarcharger.258`]],
    ['?product=a058', [`${A}.solarcharger.256`, `${B}.solarcharger.257`, `${C}.solarcharger.258`]],
    ['?product=0xC00A&online=false', [`${B}.platform.0`]],
    ['?online=true&site=' + A, [`${A}.battery.512`, `${A}.platform.0`, `${A}.solarcharger.256`]],
    ['?site=' + B, [`${B}.platform.0`, `${B}.solarcharger.257`]],
    ['?version=v1.57', [`${A}.solarcharger.256`, `${C}.solarcharger.258`]],
    ['?version=v3.70~33', [`${A}.platform.0`]],
    ['?q=SMARTSHUNT', [`${A}.battery.512`]],
    ['?q=roof', [`${A}.solarcharger.256`]],
    ['?q=ccccc', [`${C}.solarcharger.258`]],
    ['?site=dddddddddddd', []],
    ['?limit=2&offset=1', [`${A}.platform.0`, `${A}.solarcharger.256`]],
  ])('%s', async (query, expected) => {
    const res = await list(query);
    expect(res.status).toBe(200);
    expect(ids(res)).toEqual(expected);
  });

  test.each([
    '?product=solar',
    '?product=0x1ffff',
    '?online=yes',
    '?site=AAAAAAAAAAA1',
    '?version=1.57',
    '?q=',
    '?limit=0',
    '?color=red',
    '?online=true&online=false',
  ])('%s → 400 validation_failed', async (query) => {
    const res = await list(query);
    expect([res.status, res.body.error.code]).toEqual([400, 'validation_failed']);
  });
});

describe('GET /api/devices/:id', () => {
  test('→ the device and its update history, newest first', async () => {
    const id = `${A}.solarcharger.256`;
    const entry = (jobId: string, state: HistoryEntry['state']): HistoryEntry => ({
      jobId,
      executionId: `${jobId}.${id}`,
      state,
      fromVersion: 'v1.56',
      toVersion: 'v1.57',
      startedAt: '2026-01-01T00:00:00.000Z',
      finishedAt: '2026-01-01T00:05:00.000Z',
      durationMs: 300_000,
      errorCode: null,
      errorMessage: null,
    });
    await h.deps.devices.addHistory(id, entry('jaaaaaaaa01', 'failed'));
    await h.deps.devices.addHistory(id, entry('jaaaaaaaa02', 'succeeded'));
    const res = await call(h.baseUrl, 'GET', `/api/devices/${id}`, { token: VIEWER_TOKEN });
    expect(res.status).toBe(200);
    expect(res.body.device.deviceId).toBe(id);
    expect(res.body.history.map((e: HistoryEntry) => e.jobId)).toEqual(['jaaaaaaaa02', 'jaaaaaaaa01']);
  });

  test('unknown or malformed id → 404 device_not_found', async () => {
    for (const id of [`${A}.solarcharger.999`, 'not-a-device', `${A}.fridge.1`]) {
      const res = await call(h.baseUrl, 'GET', `/api/devices/${id}`, { token: VIEWER_TOKEN });
      expect([res.status, res.body.error.code]).toEqual([404, 'device_not_found']);
    }
  });
});

describe('/api/sites', () => {
  test('POST one site → 201 {portalId, secret}; the secret authenticates the site', async () => {
    const res = await call(h.baseUrl, 'POST', '/api/sites', {
      token: OPERATOR_TOKEN,
      json: { portalId: A, name: 'Farm house' },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body).toEqual({ portalId: A, secret: expect.any(String) });
    expect(await h.deps.sites.verify(A, res.body.secret)).toBe(true);
    expect(h.logText).not.toContain(res.body.secret);
  });

  test('POST {sites: [...]} → 201 {sites: [{portalId, secret}]}', async () => {
    const res = await call(h.baseUrl, 'POST', '/api/sites', {
      token: OPERATOR_TOKEN,
      json: { sites: [{ portalId: B }, { portalId: 'eeeeeeeeeee5', name: 'Boat' }] },
    });
    expect(res.status).toBe(201);
    expect(res.body.sites.map((s: { portalId: string }) => s.portalId)).toEqual([B, 'eeeeeeeeeee5']);
    for (const s of res.body.sites) expect(await h.deps.sites.verify(s.portalId, s.secret)).toBe(true);
  });

  test('GET → registered sites only, with device counts and online state', async () => {
    const res = await call(h.baseUrl, 'GET', '/api/sites', { token: VIEWER_TOKEN });
    expect(res.status).toBe(200);
    expect(res.body.sites).toEqual([
      { portalId: A, name: 'Farm house', registeredAt: expect.any(String), online: true, devices: 3 },
      { portalId: B, name: null, registeredAt: expect.any(String), online: false, devices: 2 },
      { portalId: 'eeeeeeeeeee5', name: 'Boat', registeredAt: expect.any(String), online: false, devices: 0 },
    ]);
    expect(JSON.stringify(res.body)).not.toContain('secret');
  });

  test.each([
    ['a bad portal id', { portalId: 'C0619AB1D2E3' }],
    ['an unknown field', { portalId: 'ffffffffffff', secret: 'mine' }],
    ['an empty bulk list', { sites: [] }],
    ['repeated portal ids', { sites: [{ portalId: 'ffffffffffff' }, { portalId: 'ffffffffffff' }] }],
    ['a bad entry in a bulk list', { sites: [{ portalId: 'ffffffffffff' }, { portalId: 'nope' }] }],
    [
      'more than 10,000 sites',
      { sites: Array.from({ length: 10_001 }, (_, i) => ({ portalId: i.toString(16).padStart(12, '0') })) },
    ],
  ])('%s → 400 validation_failed, nothing registered', async (_name, json) => {
    const res = await call(h.baseUrl, 'POST', '/api/sites', { token: OPERATOR_TOKEN, json });
    expect([res.status, res.body.error.code]).toEqual([400, 'validation_failed']);
    expect((await h.deps.sites.list()).length).toBe(3);
  });

  test('viewer → 403; malformed JSON → 400 invalid_json', async () => {
    expect(
      (
        await call(h.baseUrl, 'POST', '/api/sites', {
          token: VIEWER_TOKEN,
          json: { portalId: 'ffffffffffff' },
        })
      ).status,
    ).toBe(403);
    const bad = await call(h.baseUrl, 'POST', '/api/sites', {
      token: OPERATOR_TOKEN,
      body: '{',
      headers: { 'content-type': 'application/json' },
    });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'invalid_json']);
    expect((await h.deps.sites.list()).length).toBe(3);
  });
});
