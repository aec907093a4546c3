/**
 * Firmware upload (streamed into the content-addressed store), listing, and the device download
 * endpoint with its per-image token, Range, HEAD and conditional requests.
 */
import { readdir } from 'node:fs/promises';
import http from 'node:http';
import { ApiHarness, call, OPERATOR_TOKEN, VIEWER_TOKEN } from '../helpers/api-harness.js';
import { image, upload } from '../helpers/api-fixtures.js';
import { waitFor } from '../helpers/service-harness.js';

let h: ApiHarness;

beforeAll(async () => {
  h = await ApiHarness.start();
});

afterAll(async () => {
  await h.close();
});

async function storedFiles(): Promise<string[]> {
  try {
    return await readdir(h.config.firmwareDir);
  } catch {
    return [];
  }
}

async function expectNothingStored(): Promise<void> {
  expect((await call(h.baseUrl, 'GET', '/api/firmware', { token: VIEWER_TOKEN })).body).toEqual({
    firmware: [],
  });
  expect(await storedFiles()).toEqual([]);
}

describe('uploads that are refused store nothing', () => {
  const good = { version: 'v1.57', products: '0xA058' };

  test.each([
    ['no version', { products: '0xA058' }, 'query.version'],
    ['a bad version', { version: '1.57', products: '0xA058' }, 'query.version'],
    ['no products', { version: 'v1.57' }, 'query.products'],
    ['a bad product id', { version: 'v1.57', products: '0xA058,solar' }, 'query.products'],
    ['an empty product list', { version: 'v1.57', products: ' , ' }, 'query.products'],
    ['an empty name', { ...good, name: '' }, 'query.name'],
    ['notes over 2000 characters', { ...good, notes: 'n'.repeat(2001) }, 'query.notes'],
    ['an unknown parameter', { ...good, channel: 'beta' }, 'query'],
  ])('%s → 400 validation_failed', async (_name, meta, where) => {
    const res = await upload(h.baseUrl, image(100).bytes, meta);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.details.issues[0].path).toBe(where);
    await expectNothingStored();
  });

  test('declared size over MAX_FIRMWARE_BYTES → 413 before reading the body', async () => {
    const res = await upload(h.baseUrl, image(h.config.maxFirmwareBytes + 1).bytes, good);
    expect([res.status, res.body.error.code]).toEqual([413, 'payload_too_large']);
    await expectNothingStored();
  });

  test('a chunked upload that grows over the limit → 413, temp file removed', async () => {
    const chunk = new Uint8Array(16 * 1024);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent > h.config.maxFirmwareBytes * 2) return controller.close();
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const res = await fetch(`${h.baseUrl}/api/firmware?version=v1.57&products=A058`, {
      method: 'POST',
      headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, 'content-type': 'application/octet-stream' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('payload_too_large');
    await expectNothingStored();
  });

  test('a client that disconnects mid-upload leaves neither a record nor a file', async () => {
    const total = 60_000;
    const url = new URL(`${h.baseUrl}/api/firmware?version=v1.57&products=A058`);
    const req = http.request({
      host: url.hostname,
      port: url.port,
      method: 'POST',
      path: `${url.pathname}${url.search}`,
      headers: {
        authorization: `Bearer ${OPERATOR_TOKEN}`,
        'content-type': 'application/octet-stream',
        'content-length': String(total),
      },
    });
    req.on('error', () => undefined);
    // Half the announced bytes, then the connection dies.
    await new Promise<void>((resolve) => req.write(image(total / 2).bytes, () => resolve()));
    await waitFor(async () => (await storedFiles()).some((f) => f.startsWith('.upload-')), 5000, 'the temp file');
    req.destroy();
    // The store cleans up when its pipeline fails; there is no event for that outside the process.
    await waitFor(async () => (await storedFiles()).length === 0, 5000, 'the temp file to go');
    await expectNothingStored();
  });

  test('wrong content type → 415; empty body → 400; viewer → 403', async () => {
    const typed = await upload(h.baseUrl, image(100).bytes, good, {
      headers: { 'content-type': 'application/json' },
    });
    expect([typed.status, typed.body.error.code]).toEqual([415, 'unsupported_media_type']);
    const empty = await upload(h.baseUrl, new Uint8Array(0), good);
    expect([empty.status, empty.body.error.code]).toEqual([400, 'empty_body']);
    const viewer = await upload(h.baseUrl, image(100).bytes, good, { token: VIEWER_TOKEN });
    expect([viewer.status, viewer.body.error.code]).toEqual([403, 'forbidden']);
    await expectNothingStored();
  });
});

describe('upload, list, get', () => {
  const img = image(10_000);

  test('POST /api/firmware → 201 with the record; id is the SHA-256', async () => {
    const res = await upload(h.baseUrl, img.bytes, {
      version: 'v1.57',
      products: '0xA058, A389,a058',
      notes: 'fixes MPPT tracking',
    });
    expect(res.status).toBe(201);
    expect(res.body.firmware).toMatchObject({
      id: img.sha256,
      sha256: img.sha256,
      size: 10_000,
      version: 'v1.57',
      productIds: [0xa058, 0xa389],
      name: 'SmartSolar MPPT 150/35',
      notes: 'fixes MPPT tracking',
      uploadedBy: 'operator-2',
    });
    expect(res.headers.get('location')).toBe(`/api/firmware/${img.sha256}`);
    expect(await storedFiles()).toEqual([img.sha256]);
  });

  test('the same image again → 409 firmware_exists', async () => {
    const res = await upload(h.baseUrl, img.bytes, { version: 'v1.58', products: 'A058' });
    expect(res.status).toBe(409);
    expect(res.body.error).toEqual({
      code: 'firmware_exists',
      message: expect.any(String),
      details: { id: img.sha256 },
    });
    expect(await storedFiles()).toEqual([img.sha256]);
  });

  test('metadata in X-Firmware-* headers works too', async () => {
    const gx = image(2000);
    const res = await call(h.baseUrl, 'POST', '/api/firmware', {
      token: OPERATOR_TOKEN,
      body: gx.bytes,
      headers: {
        'content-type': 'application/octet-stream',
        'x-firmware-version': 'v3.70~33',
        'x-firmware-products': '0xC00A',
        'x-firmware-name': 'Venus OS beta',
      },
    });
    expect(res.status).toBe(201);
    expect(res.body.firmware).toMatchObject({
      version: 'v3.70~33',
      productIds: [0xc00a],
      name: 'Venus OS beta',
      notes: '',
    });
  });

  test('GET /api/firmware lists both, newest first; GET /api/firmware/:id; unknown and malformed ids → 404', async () => {
    const list = await call(h.baseUrl, 'GET', '/api/firmware', { token: VIEWER_TOKEN });
    expect(list.body.firmware.map((f: { version: string }) => f.version)).toEqual(['v3.70~33', 'v1.57']);
    const one = await call(h.baseUrl, 'GET', `/api/firmware/${img.sha256}`, { token: VIEWER_TOKEN });
    expect([one.status, one.body.firmware.id]).toEqual([200, img.sha256]);
    for (const id of ['0'.repeat(64), 'abc', img.sha256.toUpperCase()]) {
      const res = await call(h.baseUrl, 'GET', `/api/firmware/${id}`, { token: VIEWER_TOKEN });
      expect([res.status, res.body.error.code]).toEqual([404, 'firmware_not_found']);
    }
  });
});

// Small images are sent from memory (store/image-cache.ts); with the cache off every download streams the file.
describe.each([
  ['sent from memory', {}],
  ['streamed from disk', { FIRMWARE_CACHE_BYTES: '0' }],
])('GET /firmware/:sha256 (device download, %s)', (_how, env: Record<string, string>) => {
  const img = image(50_000);
  let d: ApiHarness;
  let token: string;
  let url: string;

  beforeAll(async () => {
    d = await ApiHarness.start(env);
    expect((await upload(d.baseUrl, img.bytes, { version: 'v1.59', products: 'A058' })).status).toBe(201);
    token = d.deps.tokens.downloadToken(
      img.sha256,
      'jexample0001.c0619ab1d2e3.solarcharger.258',
      60_000,
    );
    url = `${d.baseUrl}/firmware/${img.sha256}?token=${encodeURIComponent(token)}`;
  });

  afterAll(async () => {
    await d.close();
  });

  test('whole file: 200, exact bytes, ETag, Accept-Ranges, Content-Length, octet-stream', async () => {
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(res.headers.get('etag')).toBe(`"${img.sha256}"`);
    expect(res.headers.get('content-length')).toBe('50000');
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(Buffer.from(await res.arrayBuffer()).equals(img.bytes)).toBe(true);
  });

  test.each([
    ['bytes=1000-1999', 1000, 1999],
    ['bytes=49990-', 49_990, 49_999],
    ['bytes=-10', 49_990, 49_999],
    ['bytes=49000-60000', 49_000, 49_999],
  ])('Range %s → 206 with exactly those bytes', async (range, start, end) => {
    const res = await fetch(url, { headers: { range } });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes ${start}-${end}/50000`);
    expect(res.headers.get('content-length')).toBe(String(end - start + 1));
    expect(Buffer.from(await res.arrayBuffer()).equals(img.bytes.subarray(start, end + 1))).toBe(true);
  });

  test('unsatisfiable Range → 416 with Content-Range bytes */size; multi-range and If-Range mismatch → whole file', async () => {
    const res = await fetch(url, { headers: { range: 'bytes=50000-' } });
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe('bytes */50000');
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('range_not_satisfiable');
    const multi = await fetch(url, { headers: { range: 'bytes=0-1,5-6' } });
    expect([multi.status, (await multi.arrayBuffer()).byteLength]).toEqual([200, 50_000]);
    const stale = await fetch(url, { headers: { range: 'bytes=0-9', 'if-range': '"something-else"' } });
    expect([stale.status, (await stale.arrayBuffer()).byteLength]).toEqual([200, 50_000]);
    const fresh = await fetch(url, { headers: { range: 'bytes=0-9', 'if-range': `"${img.sha256}"` } });
    expect([fresh.status, (await fresh.arrayBuffer()).byteLength]).toEqual([206, 10]);
  });

  test('HEAD → headers only; If-None-Match → 304', async () => {
    const head = await fetch(url, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('50000');
    expect(head.headers.get('etag')).toBe(`"${img.sha256}"`);
    expect((await head.arrayBuffer()).byteLength).toBe(0);
    const ranged = await fetch(url, { method: 'HEAD', headers: { range: 'bytes=100-' } });
    expect([ranged.status, ranged.headers.get('content-length')]).toEqual([206, '49900']);
    const cached = await fetch(url, { headers: { 'if-none-match': `"${img.sha256}"` } });
    expect(cached.status).toBe(304);
  });

  test('no token → 401; a token for another image, a forged or an expired token → 403; the bearer token is no substitute', async () => {
    const bare = await call(d.baseUrl, 'GET', `/firmware/${img.sha256}`, { token: OPERATOR_TOKEN });
    expect([bare.status, bare.body.error.code]).toEqual([401, 'unauthorized']);
    const other = d.deps.tokens.downloadToken('a'.repeat(64), 'e1', 60_000);
    const expired = d.deps.tokens.downloadToken(img.sha256, 'e1', -60_000);
    for (const t of [other, `${token}x`, expired, 'garbage']) {
      const res = await call(d.baseUrl, 'GET', `/firmware/${img.sha256}?token=${encodeURIComponent(t)}`);
      expect([res.status, res.body.error.code]).toEqual([403, 'forbidden']);
    }
  });

  test('an image that is not stored → 404 even with a valid token for it; a malformed sha → 404', async () => {
    const sha = 'b'.repeat(64);
    const t = d.deps.tokens.downloadToken(sha, 'e1', 60_000);
    const res = await call(d.baseUrl, 'GET', `/firmware/${sha}?token=${t}`);
    expect([res.status, res.body.error.code]).toEqual([404, 'firmware_not_found']);
    expect((await call(d.baseUrl, 'GET', `/firmware/xyz?token=${t}`)).status).toBe(404);
  });

  test('the download token never reaches the log', async () => {
    expect(d.requestLogs().some((l) => String(l.path).startsWith('/firmware/'))).toBe(true);
    expect(d.logText).not.toContain(token);
    expect(d.logText).not.toContain('token=');
  });

  test('answered in front of the app as the API answers: request id, nosniff, one log line; a %-encoded digest and a trailing slash are the same image', async () => {
    const res = await fetch(url, { headers: { 'x-request-id': 'dl-req.1' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('dl-req.1');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    await res.arrayBuffer();
    await waitFor(async () => d.requestLogs().some((l) => l.reqId === 'dl-req.1'), 5000, 'the request log line');
    expect(d.requestLogs().filter((l) => l.reqId === 'dl-req.1')).toEqual([
      expect.objectContaining({ method: 'GET', path: `/firmware/${img.sha256}`, status: 200, operator: null }),
    ]);
    const q = `?token=${encodeURIComponent(token)}`;
    const escaped = await fetch(`${d.baseUrl}/firmware/%${img.sha256.charCodeAt(0).toString(16)}${img.sha256.slice(1)}${q}`);
    expect([escaped.status, (await escaped.arrayBuffer()).byteLength]).toEqual([200, 50_000]);
    const slash = await fetch(`${d.baseUrl}/firmware/${img.sha256}/${q}`);
    expect([slash.status, (await slash.arrayBuffer()).byteLength]).toEqual([200, 50_000]);
  });

  test('an absolute-form request line (as through a proxy) is the same download', async () => {
    const { hostname, port } = new URL(d.baseUrl);
    // node:http puts `path` on the request line as it is: here the whole URL (RFC 9112 §3.2.2).
    const got = await new Promise<{ status: number; bytes: Buffer }>((resolve, reject) => {
      const req = http.request({ hostname, port, path: url, method: 'GET' }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(got.status).toBe(200);
    expect(got.bytes.equals(img.bytes)).toBe(true);
  });

  test('a repeated or unknown query parameter → 400 validation_failed; other methods and paths get the app\'s JSON 404', async () => {
    const q = `token=${encodeURIComponent(token)}`;
    for (const query of [`${q}&${q}`, `${q}&channel=beta`]) {
      const res = await call(d.baseUrl, 'GET', `/firmware/${img.sha256}?${query}`);
      expect([res.status, res.body.error.code]).toEqual([400, 'validation_failed']);
      expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    }
    const bad = await call(d.baseUrl, 'GET', `/firmware/%zz?${q}`);
    expect([bad.status, bad.body.error.code]).toEqual([404, 'firmware_not_found']);
    for (const [method, path] of [
      ['POST', `/firmware/${img.sha256}?${q}`],
      ['DELETE', `/firmware/${img.sha256}?${q}`],
      ['GET', `/firmware/${img.sha256}/more?${q}`],
      ['GET', '/firmware'],
    ]) {
      const res = await call(d.baseUrl, method, path);
      expect([method, path, res.status, res.body.error.code]).toEqual([method, path, 404, 'not_found']);
    }
  });

  test('a store that fails → 500 internal, logged with its stack, nothing of it in the answer', async () => {
    const failing = Object.create(d.deps.firmware, {
      image: { value: () => Promise.reject(new Error('image index unreadable')) },
    }) as typeof d.deps.firmware;
    const base = await d.listen({ firmware: failing });
    const res = await call(base, 'GET', `/firmware/${img.sha256}?token=${encodeURIComponent(token)}`);
    expect([res.status, res.body]).toEqual([500, { error: { code: 'internal', message: 'internal error' } }]);
    const logged = d.logs.find((l) => l.msg === 'unhandled error in request' && l.path === `/firmware/${img.sha256}`);
    expect((logged?.err as { stack?: string } | undefined)?.stack).toContain('image index unreadable');
  });

  test('a deleted image → 404 at once, though it was just downloaded', async () => {
    expect((await fetch(url)).status).toBe(200);
    const del = await call(d.baseUrl, 'DELETE', `/api/firmware/${img.sha256}`, { token: OPERATOR_TOKEN });
    expect(del.status).toBe(204);
    const res = await call(d.baseUrl, 'GET', `/firmware/${img.sha256}?token=${encodeURIComponent(token)}`);
    expect([res.status, res.body.error.code]).toEqual([404, 'firmware_not_found']);
  });
});
