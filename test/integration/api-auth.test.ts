/**
 * Authentication, roles, the failed-attempt limit, the request log, health probes, the OpenAPI
 * document, MQTT credentials for browsers, the static portal and the extension hook.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ApiHarness, call, OPERATOR_TOKEN, VIEWER_TOKEN } from '../helpers/api-harness.js';

let h: ApiHarness;

beforeAll(async () => {
  h = await ApiHarness.start();
});

afterAll(async () => {
  await h.close();
});

describe('bearer authentication', () => {
  test('GET /api/me → name and role for each token', async () => {
    expect((await call(h.baseUrl, 'GET', '/api/me', { token: VIEWER_TOKEN })).body).toEqual({
      name: 'viewer-1',
      role: 'viewer',
    });
    expect((await call(h.baseUrl, 'GET', '/api/me', { token: OPERATOR_TOKEN })).body).toEqual({
      name: 'operator-2',
      role: 'operator',
    });
  });

  test.each([
    ['no header', {}],
    ['another scheme', { authorization: `Basic ${Buffer.from(`x:${OPERATOR_TOKEN}`).toString('base64')}` }],
    ['empty bearer', { authorization: 'Bearer ' }],
    ['wrong token', { authorization: 'Bearer wrong-token-0123456789' }],
    ['token with trailing junk', { authorization: `Bearer ${OPERATOR_TOKEN} extra` }],
  ])('%s → 401 unauthorized with WWW-Authenticate', async (_name, headers) => {
    const res = await call(h.baseUrl, 'GET', '/api/me', { headers });
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="fleetflash"/);
  });

  test('unknown /api route: 401 without a token, 404 not_found with one', async () => {
    expect((await call(h.baseUrl, 'GET', '/api/nope')).status).toBe(401);
    const res = await call(h.baseUrl, 'GET', '/api/nope', { token: VIEWER_TOKEN });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
    const wrongMethod = await call(h.baseUrl, 'DELETE', '/api/jobs', { token: OPERATOR_TOKEN });
    expect([wrongMethod.status, wrongMethod.body.error.code]).toEqual([404, 'not_found']);
  });

  test('viewers may not mutate: every operator route → 403', async () => {
    const routes: [string, string, Record<string, unknown>][] = [
      ['POST', '/api/jobs', { json: {} }],
      ['POST', '/api/jobs/jaaaaaaaaaa/abort', {}],
      ['POST', '/api/sites', { json: { portalId: 'c0619ab1d2e3' } }],
      [
        'POST',
        '/api/firmware?version=v1.57&products=A058',
        { body: 'x', headers: { 'content-type': 'application/octet-stream' } },
      ],
    ];
    for (const [method, p, opts] of routes) {
      const res = await call(h.baseUrl, method, p, { token: VIEWER_TOKEN, ...opts });
      expect([p, res.status, res.body.error.code]).toEqual([p, 403, 'forbidden']);
    }
  });

  test('20 wrong tokens from one address, then 429 rate_limited even for a good token', async () => {
    // A fresh app: its limiter has seen none of the failures above.
    const base = await h.listen({});
    for (let i = 0; i < 20; i++) {
      expect((await call(base, 'GET', '/api/me', { token: `guess-${i}-0123456789abcdef` })).status).toBe(401);
    }
    const limited = await call(base, 'GET', '/api/me', { token: 'guess-21-0123456789abcdef' });
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('rate_limited');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await call(base, 'GET', '/api/me', { token: OPERATOR_TOKEN })).status).toBe(429);
    expect((await call(base, 'GET', '/api/me')).status).toBe(429);
    // Routes without bearer auth are not affected.
    expect((await call(base, 'GET', '/healthz')).status).toBe(200);
  });

  test('requests without a token guess nothing and are not counted', async () => {
    const base = await h.listen({});
    for (let i = 0; i < 25; i++) expect((await call(base, 'GET', '/api/me')).status).toBe(401);
    expect((await call(base, 'GET', '/api/me', { token: VIEWER_TOKEN })).status).toBe(200);
  });
});

describe('request log', () => {
  test('one line per request with method, path, status, ms, request id and operator; no tokens or query strings', async () => {
    const res = await call(h.baseUrl, 'GET', '/api/jobs?limit=5', {
      token: OPERATOR_TOKEN,
      headers: { 'x-request-id': 'req-abc.1' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('req-abc.1');
    const line = h.requestLogs().find((l) => l.reqId === 'req-abc.1');
    expect(line).toMatchObject({
      level: 30,
      method: 'GET',
      path: '/api/jobs',
      status: 200,
      operator: 'operator-2',
    });
    expect(typeof line?.ms).toBe('number');
    expect(h.requestLogs().filter((l) => l.reqId === 'req-abc.1')).toHaveLength(1);

    const generated = await call(h.baseUrl, 'GET', '/healthz', {
      headers: { 'x-request-id': 'bad id with spaces' },
    });
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);

    await call(h.baseUrl, 'GET', '/api/me', { token: 'a-wrong-token-that-must-not-be-logged' });
    expect(h.logText).not.toContain(OPERATOR_TOKEN);
    expect(h.logText).not.toContain(VIEWER_TOKEN);
    expect(h.logText).not.toContain('a-wrong-token-that-must-not-be-logged');
    expect(h.logText.toLowerCase()).not.toContain('authorization');
    expect(h.logText).not.toContain('limit=5');
  });
});

describe('health, readiness and the OpenAPI document (no auth)', () => {
  test('/healthz → 200 {ok:true}', async () => {
    const res = await call(h.baseUrl, 'GET', '/healthz');
    expect([res.status, res.body]).toEqual([200, { ok: true }]);
  });

  test('/readyz → 200 when ready, 503 when not', async () => {
    const ok = await call(h.baseUrl, 'GET', '/readyz');
    expect([ok.status, ok.body]).toEqual([200, { ok: true, checks: { redis: true, broker: true } }]);
    h.state.ready = false;
    try {
      const down = await call(h.baseUrl, 'GET', '/readyz');
      expect([down.status, down.body]).toEqual([503, { ok: false, checks: { redis: true, broker: false } }]);
    } finally {
      h.state.ready = true;
    }
  });

  test('/readyz → 503 when the readiness check itself throws', async () => {
    const base = await h.listen({ readiness: () => Promise.reject(new Error('redis down')) });
    const res = await call(base, 'GET', '/readyz');
    expect([res.status, res.body]).toEqual([503, { ok: false, checks: {} }]);
  });

  test('/api/openapi.json describes every route with its request schema and the error shape', async () => {
    const res = await call(h.baseUrl, 'GET', '/api/openapi.json');
    expect(res.status).toBe(200);
    const doc = res.body;
    expect(doc.openapi).toBe('3.1.0');
    const expected: Record<string, string[]> = {
      '/api/me': ['get'],
      '/api/jobs': ['get', 'post'],
      '/api/jobs/{id}': ['get'],
      '/api/jobs/{id}/events': ['get'],
      '/api/jobs/{id}/abort': ['post'],
      '/api/devices': ['get'],
      '/api/devices/{id}': ['get'],
      '/api/sites': ['get', 'post'],
      '/api/firmware': ['get', 'post'],
      '/api/firmware/{id}': ['delete', 'get'],
      '/api/mqtt-credentials': ['post'],
      '/api/audit': ['get'],
      '/firmware/{sha256}': ['get'],
      '/healthz': ['get'],
      '/readyz': ['get'],
      '/api/openapi.json': ['get'],
    };
    for (const [p, methods] of Object.entries(expected))
      expect([p, Object.keys(doc.paths[p] ?? {}).sort()]).toEqual([p, methods]);

    const launch = doc.paths['/api/jobs'].post;
    const body = launch.requestBody.content['application/json'].schema;
    expect(body.additionalProperties).toBe(false);
    // `devices` or `filter`: exactly one, checked by a refinement JSON Schema cannot express.
    expect(body.required).toEqual(['firmwareId']);
    expect(Object.keys(body.properties)).toEqual(expect.arrayContaining(['devices', 'filter', 'rollout', 'abort', 'schedule', 'retry']));
    expect(body.properties.devices).toMatchObject({
      type: 'array',
      minItems: 1,
      maxItems: h.config.maxDevicesPerJob,
    });
    expect(body.properties.timeouts.properties.totalMs).toMatchObject({ type: 'integer', minimum: 100 });
    expect(Object.keys(launch.responses).sort()).toEqual([
      '202',
      '400',
      '401',
      '403',
      '404',
      '413',
      '415',
      '422',
      '429',
    ]);
    expect(launch.responses['422'].content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/Error',
    });
    expect(doc.components.schemas.Error.properties.error.required).toEqual(['code', 'message']);

    const events = doc.paths['/api/jobs/{id}/events'].get.parameters.map(
      (p: { name: string; in: string }) => `${p.in}:${p.name}`,
    );
    expect(events).toEqual(['path:id', 'query:after', 'query:limit']);
    const upload = doc.paths['/api/firmware'].post.parameters.filter(
      (p: { required: boolean }) => p.required,
    );
    expect(upload.map((p: { name: string }) => p.name)).toEqual(['version', 'products']);
    expect(doc.paths['/healthz'].get.security).toEqual([]);
  });
});

describe('POST /api/mqtt-credentials', () => {
  test('→ a token TokenSigner.verifyBrowserToken accepts, for the caller, read-only scope', async () => {
    const before = Date.now();
    const res = await call(h.baseUrl, 'POST', '/api/mqtt-credentials', { token: VIEWER_TOKEN });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const port = new URL(h.baseUrl).port;
    expect(res.body).toEqual({
      url: `ws://127.0.0.1:${port}/mqtt`,
      username: 'viewer-1',
      password: expect.any(String),
      expiresAt: expect.any(String),
      clientIdPrefix: 'web-viewer-1-',
      jobs: '*',
    });
    const claims = h.deps.tokens.verifyBrowserToken(res.body.password);
    expect(claims).toMatchObject({ subject: 'viewer-1', role: 'viewer', jobs: '*' });
    expect(Date.parse(res.body.expiresAt)).toBe(claims?.expiresAt);
    expect(claims!.expiresAt).toBeGreaterThan(before + h.config.browserTokenTtlMs - 2000);
    expect(claims!.expiresAt).toBeLessThanOrEqual(Date.now() + h.config.browserTokenTtlMs);
    expect(h.logText).not.toContain(res.body.password);
  });

  test('→ 503 broker_unavailable when this instance has no broker; 401 without a token', async () => {
    h.state.brokerAvailable = false;
    try {
      const res = await call(h.baseUrl, 'POST', '/api/mqtt-credentials', { token: OPERATOR_TOKEN });
      expect([res.status, res.body.error.code]).toEqual([503, 'broker_unavailable']);
    } finally {
      h.state.brokerAvailable = true;
    }
    expect((await call(h.baseUrl, 'POST', '/api/mqtt-credentials')).status).toBe(401);
  });
});

describe('static portal and extensions', () => {
  let webDir: string;
  beforeAll(async () => {
    webDir = await mkdtemp(path.join(os.tmpdir(), 'ff-api-web-'));
    await writeFile(path.join(webDir, 'index.html'), '<!doctype html><title>fleetflash</title>');
  });
  afterAll(async () => {
    await rm(webDir, { recursive: true, force: true });
  });

  test('webDir is served at / and missing files are JSON 404s', async () => {
    const base = await h.listen({ webDir });
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<title>fleetflash</title>');
    const missing = await call(base, 'GET', '/nope.js');
    expect([missing.status, missing.body.error.code]).toEqual([404, 'not_found']);
  });

  test('mount() routes run before the 404 handler, can use the API guards, and unknown errors are 500 without a stack', async () => {
    const base = await h.listen({
      mount: (app, guards) => {
        app.get('/admin/ping', guards.authenticate, guards.requireRole('operator'), (_req, res) => {
          res.json({ pong: true });
        });
        app.get('/admin/boom', () => {
          throw new Error('secret internals');
        });
      },
    });
    expect((await call(base, 'GET', '/admin/ping')).status).toBe(401);
    expect((await call(base, 'GET', '/admin/ping', { token: VIEWER_TOKEN })).status).toBe(403);
    expect((await call(base, 'GET', '/admin/ping', { token: OPERATOR_TOKEN })).body).toEqual({ pong: true });
    const boom = await call(base, 'GET', '/admin/boom');
    expect([boom.status, boom.body]).toEqual([
      500,
      { error: { code: 'internal', message: 'internal error' } },
    ]);
    const logged = h.logs.find((l) => l.msg === 'unhandled error in request');
    expect((logged?.err as { stack?: string } | undefined)?.stack).toContain('secret internals');
  });
});
