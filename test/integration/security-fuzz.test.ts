/**
 * Fuzzing the running service (fast-check): thousands of malformed REST requests and MQTT payloads
 * while real firmware jobs run on simulated sites. Asserts: no 5xx, the service stays up and
 * answers, no job is created by a bad request, no prototype is polluted, the dropped payloads are
 * counted, and every valid job still completes with every execution succeeded.
 *
 * Reproduce a failure with FUZZ_SEED=<seed from the failure message>.
 */
import http from 'node:http';
import fc from 'fast-check';
import type { Fleet } from '../../devices-sim/index.js';
import { connectMqtt, waitConnected, type MqttClient } from '../../src/mqtt/connect.js';
import { PHASES, type ExecutionRecord, type JobRecord } from '../../src/protocol/index.js';
import { createKeys } from '../../src/store/keys.js';
import { startHarness, waitFor, type Harness } from '../helpers/service-harness.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20_240_611);
const REST_RUNS = 2500;
const LAUNCH_RUNS = 600;
const MQTT_GARBAGE = 2000;
const MAX_DEVICES = 50;
/** The garbage site: registered, connected with its own secret, and hostile. */
const G = 'fa22fa22fa22';

let h: Harness;
let fleet: Fleet;
let garbage: MqttClient;
let service: MqttClient;
const prototypeBefore = Object.getOwnPropertyNames(Object.prototype).sort();

/** Jobs the test itself launched (valid ones), by id. */
const launched: JobRecord[] = [];

beforeAll(async () => {
  h = await startHarness({ env: { MAX_DEVICES_PER_JOB: String(MAX_DEVICES) }, captureLogs: true });
  // Slow enough that the jobs run while the fuzz does; alive long enough that no keepalive lapses.
  fleet = await h.addFleet({
    sites: 4,
    salt: 'fuzz',
    durations: { aliveSec: 600_000, gxInstallSec: 8000, vedirectInstallSec: 8000, vebusFlashSec: 8000 },
  });
  const [{ secret }] = await h.service.sites.register([{ portalId: G }], 'test');
  garbage = connectMqtt(h.service.mqttUrl, {
    clientId: `gx-${G}`,
    username: G,
    password: secret,
    reconnectPeriod: 0,
  });
  service = connectMqtt(h.service.mqttUrl, {
    clientId: 'fuzz-service',
    username: h.service.config.mqttServiceUser,
    password: h.service.config.mqttServicePassword,
    reconnectPeriod: 0,
  });
  await Promise.all([waitConnected(garbage), waitConnected(service)]);
}, 60_000);

afterAll(async () => {
  await Promise.all([garbage?.endAsync(true), service?.endAsync(true)]);
  await h?.close();
});

// ---- the valid work ---------------------------------------------------------------------------

/** Devices of the fleet that `image` fits, on the given site indexes. */
function targets(service: string, siteIndexes: number[]) {
  const sites = siteIndexes.map((i) => fleet.sites[i].portalId);
  const first = fleet.devices().find((d) => d.service === service && sites.includes(d.portalId));
  if (!first) throw new Error(`no ${service} device on sites ${siteIndexes.join(',')}`);
  const image = h.image(first.productId);
  const devices = fleet
    .devices()
    .filter((d) => sites.includes(d.portalId) && image.productIds.includes(d.productId))
    .map((d) => d.deviceId);
  return { image, devices };
}

async function launch(service: string, siteIndexes: number[]): Promise<JobRecord> {
  const { image, devices } = targets(service, siteIndexes);
  const res = await h.api('/api/jobs', { method: 'POST', json: { firmwareId: image.id, devices } });
  expect(res.status).toBe(202);
  const { job } = (await res.json()) as { job: JobRecord };
  launched.push(job);
  return job;
}

/** Read from the store, not over HTTP: the fuzz may have the API's failed-auth limit engaged. */
async function finished(jobId: string): Promise<{ job: JobRecord; executions: ExecutionRecord[] }> {
  return waitFor(
    async () => {
      const job = await h.service.jobs.get(jobId);
      if (job?.state !== 'completed' && job?.state !== 'aborted') return null;
      return { job, executions: await h.service.jobs.executions(jobId) };
    },
    60_000,
    `job ${jobId} to finish`,
  );
}

// ---- REST -------------------------------------------------------------------------------------

interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer | null;
}

interface FuzzResponse {
  status: number;
  /** Set when the connection failed instead of answering. */
  error?: string;
}

/**
 * Sends one request on a connection of its own: no keep-alive, so no request can inherit the state a
 * hostile predecessor left on a shared socket. Status 0: the connection failed instead of answering.
 */
function send(req: FuzzRequest): Promise<FuzzResponse> {
  const url = new URL(h.base);
  return new Promise((resolve) => {
    let r: http.ClientRequest;
    try {
      r = http.request(
        {
          host: url.hostname,
          port: url.port,
          method: req.method,
          path: req.path,
          headers: req.headers,
          agent: false,
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
          res.on('error', (err) => resolve({ status: res.statusCode ?? 0, error: err.message }));
        },
      );
    } catch (err) {
      // The client itself refused to send it (e.g. an invalid header character): nothing reached the server.
      resolve({ status: -1, error: (err as Error).message });
      return;
    }
    r.on('error', (err: NodeJS.ErrnoException) => resolve({ status: 0, error: err.code ?? err.message }));
    r.end(req.body ?? undefined);
  });
}

const POLLUTING_BODIES = [
  '{"__proto__":{"polluted":"yes"}}',
  '{"constructor":{"prototype":{"polluted":"yes"}}}',
  '{"firmwareId":"x","devices":[],"__proto__":{"polluted":"yes"}}',
  '{"sites":[{"portalId":"c0619ab1d2e3","__proto__":{"admin":true}}]}',
  '{"jobs":["jaaaaaaaaaa1"],"__proto__":{"polluted":"yes"}}',
  '[{"__proto__":{"polluted":"yes"}}]',
];

/** Ids that look like ids but name nothing real (a mutating call must never hit the real jobs). */
const fakeJobId = fc.stringMatching(/^j[0-9a-z]{8,24}$/).filter((id) => !launched.some((j) => j.id === id));
const segment = fc.oneof(
  fakeJobId,
  fc.stringMatching(/^[0-9a-f]{12}\.(platform|vebus|solarcharger|battery)\.\d{1,6}$/),
  fc.stringMatching(/^[0-9a-f]{64}$/),
  fc.string({ maxLength: 40, unit: 'binary' }).map(encodeURIComponent),
  fc.constantFrom(
    '..',
    '%2e%2e',
    '%00',
    '%E0%A4%A',
    '%',
    '__proto__',
    'constructor',
    'prototype',
    '',
    'j'.repeat(3000),
  ),
);
const ROUTES: [string, string][] = [
  ['GET', '/api/jobs'],
  ['POST', '/api/jobs'],
  ['GET', '/api/jobs/{s}'],
  ['GET', '/api/jobs/{s}/events'],
  ['POST', '/api/jobs/{s}/abort'],
  ['POST', '/api/jobs/{s}/devices/{s}/cancel'],
  ['GET', '/api/devices'],
  ['GET', '/api/devices/{s}'],
  ['GET', '/api/sites'],
  ['POST', '/api/sites'],
  ['GET', '/api/firmware'],
  ['POST', '/api/firmware'],
  ['GET', '/api/firmware/{s}'],
  ['DELETE', '/api/firmware/{s}'],
  ['POST', '/api/mqtt-credentials'],
  ['GET', '/api/audit'],
  ['GET', '/api/me'],
  ['GET', '/api/openapi.json'],
  ['GET', '/firmware/{s}'],
  ['GET', '/healthz'],
  ['GET', '/readyz'],
  ['GET', '/{s}'],
  ['POST', '/{s}/{s}'],
];
const QUERY_KEYS = [
  'limit',
  'offset',
  'after',
  'before',
  'site',
  'q',
  'product',
  'online',
  'version',
  'products',
  'name',
  'notes',
  'token',
  '__proto__',
  'constructor',
  'a[b]',
  'jobs[]',
];
const queryValue = fc.oneof(
  fc.string({ maxLength: 30, unit: 'binary' }),
  fc.integer().map(String),
  fc.constantFrom(
    '',
    '-1',
    '1e309',
    'NaN',
    '0x10',
    'v1.57',
    'A058',
    '0xA058,0xA389',
    'true',
    'x'.repeat(5000),
  ),
);
const query = fc
  .array(fc.tuple(fc.constantFrom(...QUERY_KEYS), queryValue), { maxLength: 4 })
  .map((pairs) =>
    pairs.length
      ? `?${pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')}`
      : '',
  );
const body = fc.oneof(
  { arbitrary: fc.constant(null), weight: 4 },
  {
    arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
    weight: 4,
  },
  fc
    .object({
      maxDepth: 3,
      key: fc.constantFrom(
        'firmwareId',
        'devices',
        'sites',
        'portalId',
        'jobs',
        'timeouts',
        'name',
        '__proto__',
        'zz',
      ),
    })
    .map((v) => Buffer.from(JSON.stringify(v))),
  fc.constantFrom(...POLLUTING_BODIES).map((s) => Buffer.from(s)),
  fc.uint8Array({ maxLength: 4096 }).map((a) => Buffer.from(a)),
  fc.nat({ max: 20_000 }).map((n) => Buffer.from(`${'['.repeat(n)}${']'.repeat(n)}`)),
  // Over the 1 MiB and 2 MiB body limits, and over MAX_FIRMWARE_BYTES: rarer, they cost the most to send.
  {
    arbitrary: fc
      .constantFrom(1100 * 1024, 2200 * 1024, 300 * 1024)
      .map((n) => Buffer.from(`{"firmwareId":"${'a'.repeat(n)}"}`)),
    weight: 1,
  },
  fc.string({ maxLength: 200, unit: 'binary' }).map((s) => Buffer.from(s)),
);
const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=utf-16',
  'application/json; charset=x-garbage',
  'application/octet-stream',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  '*/*',
  'application/json, text/plain',
  'garbage',
];

function restRequest(tokens: { operator: string; viewer: string }) {
  return fc
    .record({
      route: fc.constantFrom(...ROUTES),
      method: fc.option(
        fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'PROPFIND', 'SEARCH'),
        { freq: 4 },
      ),
      segments: fc.array(segment, { minLength: 2, maxLength: 2 }),
      query,
      auth: fc.constantFrom('operator', 'operator', 'viewer', 'none'),
      contentType: fc.option(fc.oneof(fc.constantFrom(...CONTENT_TYPES), fc.string({ maxLength: 30 })), {
        freq: 5,
      }),
      encoding: fc.option(fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'x-garbage', 'gzip, gzip'), {
        freq: 8,
      }),
      extra: fc.dictionary(
        fc.constantFrom(
          'x-request-id',
          'x-firmware-version',
          'x-firmware-products',
          'x-firmware-name',
          'range',
          'if-range',
          'accept',
          'x-forwarded-for',
        ),
        fc.string({ maxLength: 200 }),
        { maxKeys: 3 },
      ),
      body,
    })
    .map((r): FuzzRequest => {
      let i = 0;
      const path = r.route[1].replace(/\{s\}/g, () => r.segments[i++ % 2]) + r.query;
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(r.extra)) if (/^[\t\x20-\x7e]*$/.test(v)) headers[k] = v;
      if (r.auth !== 'none')
        headers.authorization = `Bearer ${r.auth === 'operator' ? tokens.operator : tokens.viewer}`;
      if (r.contentType !== null && /^[\t\x20-\x7e]*$/.test(r.contentType))
        headers['content-type'] = r.contentType;
      if (r.encoding !== null) headers['content-encoding'] = r.encoding;
      return { method: r.method ?? r.route[0], path, headers, body: r.body };
    });
}

/** `POST /api/jobs` bodies that are each wrong in one way, built on a valid one. */
function badLaunch(
  valid: { firmwareId: string; devices: string[] },
  foreignDevice: string,
  tokens: { operator: string; viewer: string },
) {
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));
  const junk = fc.oneof(
    fc.string({ maxLength: 80, unit: 'binary' }),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.jsonValue({ maxDepth: 2 }),
  );
  const mutation = fc.oneof(
    junk.map((firmwareId) => ({ why: 'firmwareId', body: json({ ...valid, firmwareId }) })),
    fc
      .stringMatching(/^[0-9a-f]{64}$/)
      .map((firmwareId) => ({ why: 'unknown firmware', body: json({ ...valid, firmwareId }) })),
    junk.map((devices) => ({ why: 'devices', body: json({ ...valid, devices }) })),
    fc
      .array(junk, { minLength: 1, maxLength: 5 })
      .map((bad) => ({ why: 'device ids', body: json({ ...valid, devices: [...valid.devices, ...bad] }) })),
    fc
      .stringMatching(/^[0-9a-f]{12}\.solarcharger\.\d{1,5}$/)
      .map((d) => ({ why: 'unknown device', body: json({ ...valid, devices: [...valid.devices, d] }) })),
    // Only devices the image does not fit (a mix is a valid job whose misfits are rejected, by design).
    fc.constant({ why: 'another product', body: json({ ...valid, devices: [foreignDevice] }) }),
    fc.constant({ why: 'no devices', body: json({ ...valid, devices: [] }) }),
    fc.constant({
      why: 'too many devices',
      body: json({
        ...valid,
        devices: Array.from({ length: MAX_DEVICES + 1 }, (_, i) => `${G}.solarcharger.${i}`),
      }),
    }),
    fc
      .tuple(fc.string({ minLength: 1, maxLength: 20 }), junk)
      .map(([k, v]) => ({ why: 'unknown field', body: json({ ...valid, [`zz_${k}`]: v }) })),
    fc.constant({
      why: '__proto__',
      body: Buffer.from(
        `{"firmwareId":"${valid.firmwareId}","devices":${JSON.stringify(valid.devices)},"__proto__":{"polluted":"yes"}}`,
      ),
    }),
    fc.constant({
      why: 'constructor',
      body: json({ ...valid, constructor: { prototype: { polluted: 'yes' } } }),
    }),
    fc
      .record({ preflightMs: junk, totalMs: fc.integer({ min: -10, max: 99 }) })
      .map((timeouts) => ({ why: 'timeouts', body: json({ ...valid, timeouts }) })),
    fc.constant({ why: 'not JSON', body: Buffer.from(`{"firmwareId":"${valid.firmwareId}",`) }),
    fc.constant({
      why: 'over the body limit',
      body: json({ ...valid, devices: [...valid.devices, 'x'.repeat(1024 * 1024)] }),
    }),
    fc.constant({ why: 'array', body: json([valid]) }),
  );
  const sender = fc.constantFrom<{ headers: Record<string, string>; expect: 'invalid' | number }>(
    {
      headers: { authorization: `Bearer ${tokens.operator}`, 'content-type': 'application/json' },
      expect: 'invalid',
    },
    {
      headers: { authorization: `Bearer ${tokens.operator}`, 'content-type': 'application/json' },
      expect: 'invalid',
    },
    { headers: { authorization: `Bearer ${tokens.operator}`, 'content-type': 'text/plain' }, expect: 415 },
    {
      headers: { authorization: `Bearer ${tokens.viewer}`, 'content-type': 'application/json' },
      expect: 403,
    },
    { headers: { 'content-type': 'application/json' }, expect: 401 },
  );
  return fc.tuple(mutation, sender);
}

// ---- MQTT -------------------------------------------------------------------------------------

const inventoryLeaf = fc.constantFrom(
  'ProductId',
  'ProductName',
  'FirmwareVersion',
  'Connected',
  'CustomName',
);
const garbageTopic = fc.oneof(
  fc.constant(`N/${G}/system/0/Serial`),
  fc.constant(`N/${G}/full_publish_completed`),
  fc
    .tuple(
      fc.constantFrom('platform', 'vebus', 'solarcharger', 'battery', 'settings', 'x'),
      fc.integer({ min: 0, max: 99_999 }),
      inventoryLeaf,
    )
    .map(([s, i, leaf]) => `N/${G}/${s}/${i}/${leaf}`),
  fc.constant(`N/${G}/platform/0/Firmware/State`),
  fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/).map((rpc) => `P/${G}/out/${rpc}`),
  fc
    .array(fc.string({ maxLength: 12, unit: 'binary' }), { minLength: 1, maxLength: 6 })
    // Wildcards and NUL make an invalid PUBLISH that the client library itself refuses to send.
    .filter((levels) => levels.every((l) => !/[+#/]/.test(l) && !l.includes(String.fromCharCode(0))))
    .map((levels) => `N/${G}/${levels.join('/')}`),
);
const garbagePayload = fc.oneof(
  fc.uint8Array({ maxLength: 2048 }).map((a) => Buffer.from(a)),
  fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v) ?? '')),
  fc.jsonValue({ maxDepth: 2 }).map((value) => Buffer.from(JSON.stringify({ value }))),
  fc
    .constantFrom(
      '',
      '{"value":null}',
      `{"value":"${G}"}`,
      '{"value":1e400}',
      '{"value":-1}',
      '{"value":65536}',
      '{"__proto__":{"polluted":"yes"},"value":1}',
      '{"constructor":{"prototype":{"polluted":"yes"}}}',
      '{"event":"progress","executionId":"x","phase":"installing","progress":101}',
      '{"event":"failed","executionId":"j1.x","error":{"code":1}}',
      '{"result":{"accepted":true,"executionId":"+"}}',
    )
    .map((s) => Buffer.from(s)),
  fc.nat({ max: 16_000 }).map((n) => Buffer.from(`${'['.repeat(n)}${']'.repeat(n)}`)),
  fc
    .constantFrom(17 * 1024, 40 * 1024, 70 * 1024)
    .map((n) => Buffer.from(JSON.stringify({ value: 'x'.repeat(n) }))),
  fc.string({ maxLength: 300 }).map((value) => Buffer.from(JSON.stringify({ value }))),
);

/** A progress report that is not newer than the record: an older phase, or the same phase at or below its percent. */
function staleProgress(records: ExecutionRecord[]) {
  const running = records.filter((r) => r.state === 'in_progress' && r.installAccepted && r.phase);
  if (running.length === 0) return null;
  return fc.tuple(fc.constantFrom(...running), fc.nat(), fc.nat({ max: 100 })).map(([r, p, pct]) => {
    const current = PHASES.indexOf(r.phase!);
    const phase = PHASES[p % (current + 1)];
    const progress = phase === r.phase ? Math.min(pct, r.progress) : pct;
    return { record: r, body: { event: 'progress', executionId: r.executionId, phase, progress } };
  });
}

// ---- the run ----------------------------------------------------------------------------------

test('thousands of malformed requests and payloads while real jobs run: no 5xx, no crash, no bad job, every valid job succeeds', async () => {
  const tokens = { operator: h.operatorToken, viewer: h.viewerToken };
  const first = await launch('platform', [0, 1]);
  const jobsKey = createKeys(h.service.config.queuePrefix).jobs();
  const jobsAtStart = await h.service.redis.zcard(jobsKey);
  const statsBefore = h.service.payloadStats.snapshot();
  const refusedBefore = h.service.broker!.stats().publishesRefused['payload-too-large'];

  // The device link's share: stale progress from the sites that run the first job, on their own connections.
  const staleSent = { count: 0 };
  const stale = (async () => {
    const accepted = await waitFor(
      async () =>
        (await h.service.jobs.executions(first.id)).find(
          (r) => r.state === 'in_progress' && r.installAccepted,
        ),
      30_000,
      'an accepted install',
    );
    // Raw bytes and oversize payloads on a supervised site's RPC channel reach the device link as a
    // device's would; the service account sends them, since the broker (rightly) caps what a site may
    // send. Sent while the site is supervised, i.e. while its execution runs.
    const site = accepted.deviceId.slice(0, 12);
    for (const [payload] of fc.sample(fc.tuple(garbagePayload), { numRuns: 300, seed: SEED + 1 })) {
      service.publish(`P/${site}/out/fuzz`, payload, { qos: 0 });
    }
    for (let round = 0; round < 30; round++) {
      const records = await h.service.jobs.executions(first.id);
      const arb = staleProgress(records);
      if (!arb) break;
      for (const { record, body } of fc.sample(arb, { numRuns: 10, seed: SEED + round })) {
        const site = fleet.site(record.deviceId.slice(0, 12))!;
        site.sendRpc(`stale${round}`, body);
        staleSent.count++;
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();

  // The garbage site, on its own N/ and P/out topics, through the broker.
  const mqttGarbage = (async () => {
    const messages = fc.sample(
      fc.tuple(garbageTopic, garbagePayload, fc.constantFrom(0, 1) as fc.Arbitrary<0 | 1>, fc.boolean()),
      {
        numRuns: MQTT_GARBAGE,
        seed: SEED,
      },
    );
    for (let i = 0; i < messages.length; i += 50) {
      await Promise.all(
        messages
          .slice(i, i + 50)
          .map(([topic, payload, qos, retain]) => garbage.publishAsync(topic, payload, { qos, retain })),
      );
    }
    // A site inventing products: well-formed, but more than any GX has.
    for (let i = 0; i < 150; i++) {
      await garbage.publishAsync(`N/${G}/solarcharger/${1000 + i}/ProductId`, '{"value":41048}', { qos: 1 });
    }
  })();

  // REST: requests of every shape, then launch bodies each wrong in one way.
  // Sent 8 at a time, in chunks sampled with seeds derived from SEED (reproducible, and never more
  // than one chunk of bodies in memory). Each request carries its own X-Request-Id, so the server's
  // request log says how it was answered even when the client saw the connection cut instead (a
  // server that answers without reading a body may close before the client has read the answer).
  const statuses = new Map<number, number>();
  const failures: string[] = [];
  const cut = new Map<string, string>();
  const describe = (req: FuzzRequest) =>
    `${req.method} ${req.path.slice(0, 300)} ${JSON.stringify(req.headers)} body ${req.body ? `${req.body.length} bytes: ${req.body.subarray(0, 120).toString('utf8')}` : 'none'}`;
  const CHUNK = 100;
  for (let chunk = 0; chunk * CHUNK < REST_RUNS; chunk++) {
    const requests = fc.sample(restRequest(tokens), { numRuns: CHUNK, seed: SEED + chunk });
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < requests.length) {
          const id = `fz-${chunk}-${next}`;
          const req = requests[next++];
          req.headers['x-request-id'] = id;
          const res = await send(req);
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (res.status >= 500 || res.status < 0)
            failures.push(`${res.status} ${res.error ?? ''} ← ${describe(req)}`);
          if (res.status === 0) cut.set(id, describe(req));
        }
      }),
    );
  }
  expect(failures).toEqual([]);
  // Every request whose connection was cut reached the server and was answered below 500 there.
  const answered = (id: string) => h.logs.find((l) => l.msg === 'request' && l.reqId === id);
  await waitFor(() => [...cut.keys()].every(answered), 10_000, 'the request log of the cut requests');
  expect(
    [...cut]
      .map(([id, what]) => [what, answered(id)?.status])
      .filter(([, status]) => typeof status !== 'number' || status >= 500),
  ).toEqual([]);
  expect(
    h.logs.filter(
      (l) => l.msg === 'unhandled error in request' || (l.msg === 'request' && (l.status as number) >= 500),
    ),
  ).toEqual([]);
  expect(cut.size).toBeLessThan(REST_RUNS / 10);
  // The generator reached past routing and authentication into validation, body parsing and handlers.
  expect([...statuses.keys()].sort((a, b) => a - b)).toEqual(
    expect.arrayContaining([200, 400, 401, 403, 404, 415]),
  );

  // The second job starts in the middle of it all.
  const second = await launch('solarcharger', [2, 3]);
  const foreign = targets('platform', [0]).devices[0];
  const valid = { firmwareId: second.firmwareId, devices: targets('solarcharger', [2, 3]).devices };
  await fc.assert(
    fc.asyncProperty(badLaunch(valid, foreign, tokens), async ([{ why, body: payload }, who]) => {
      const res = await send({ method: 'POST', path: '/api/jobs', headers: who.headers, body: payload });
      const ok =
        who.expect === 'invalid' ? [400, 404, 413, 422].includes(res.status) : res.status === who.expect;
      if (!ok)
        throw new Error(
          `${why}: answered ${res.status}${res.error ? ` (${res.error})` : ''}, wanted ${who.expect}`,
        );
    }),
    { numRuns: LAUNCH_RUNS, seed: SEED },
  );

  // Garbage Authorization headers last: they engage the failed-auth limit (429), which is its own check.
  const wrongTokens = fc.sample(
    fc.oneof(
      fc.string({ maxLength: 100 }).map((t) => `Bearer ${t}`),
      fc.string({ maxLength: 100 }),
      fc.constant(`Bearer ${'a'.repeat(5000)}`),
    ),
    { numRuns: 200, seed: SEED },
  );
  const limited: number[] = [];
  for (const authorization of wrongTokens) {
    if (!/^[\t\x20-\x7e]*$/.test(authorization)) continue;
    const res = await send({
      method: 'POST',
      path: '/api/jobs',
      headers: { authorization, 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify(valid)),
    });
    expect([authorization.slice(0, 40), [401, 429].includes(res.status)]).toEqual([
      authorization.slice(0, 40),
      true,
    ]);
    limited.push(res.status);
  }
  expect(limited).toContain(429);

  await Promise.all([stale, mqttGarbage]);

  // No bad request created a job: the only jobs are the two launched above.
  const jobIds = await h.service.redis.zrevrange(jobsKey, 0, -1);
  expect(jobIds.sort()).toEqual(launched.map((j) => j.id).sort());
  expect(jobIds.length).toBe(jobsAtStart + 1);

  // Every valid job completes, every execution succeeded, and nothing went backwards.
  for (const job of launched) {
    const { job: done, executions } = await finished(job.id);
    expect([done.id, done.state]).toEqual([job.id, 'completed']);
    expect(executions.map((e) => [e.deviceId, e.state])).toEqual(
      executions.map((e) => [e.deviceId, 'succeeded']),
    );
    expect(executions.every((e) => e.progress === 100)).toBe(true);
  }
  expect(fleet.truth.maxInstallsPerExecution()).toBe(1);

  // The service is alive and answers; nothing was polluted; the garbage was seen and counted.
  const health = await send({ method: 'GET', path: '/healthz', headers: {}, body: null });
  expect(health.status).toBe(200);
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeBefore);
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  const stats = h.service.payloadStats.snapshot();
  const grew = (
    source: 'fleet-monitor' | 'device-link',
    reason: keyof (typeof stats.dropped)['fleet-monitor'],
  ) => stats.dropped[source][reason] - statsBefore.dropped[source][reason];
  expect(grew('fleet-monitor', 'malformed')).toBeGreaterThan(0);
  expect(grew('fleet-monitor', 'invalid')).toBeGreaterThan(0);
  expect(grew('fleet-monitor', 'oversize')).toBeGreaterThan(0);
  expect(grew('fleet-monitor', 'over-limit')).toBeGreaterThan(0);
  expect(grew('fleet-monitor', 'out-of-order')).toBeGreaterThan(0);
  expect(grew('device-link', 'malformed')).toBeGreaterThan(0);
  expect(grew('device-link', 'invalid')).toBeGreaterThan(0);
  expect(grew('device-link', 'oversize')).toBeGreaterThan(0);
  expect(staleSent.count).toBeGreaterThan(0);
  expect(grew('device-link', 'out-of-order')).toBeGreaterThan(0);
  expect(h.service.broker!.stats().publishesRefused['payload-too-large']).toBeGreaterThan(refusedBefore);
  expect(h.service.broker!.stats().retainStripped).toBeGreaterThan(0);
  expect(garbage.connected).toBe(true);
}, 120_000);
