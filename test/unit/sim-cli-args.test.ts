/** `npm run sim` flags and credential sources. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseCliArgs, UsageError } from '../../devices-sim/cli-args.js';
import { TYPICAL_TIMING_SPREAD } from '../../devices-sim/fault-plan.js';
import { loadCredentials, provisionSites } from '../../devices-sim/credentials-source.js';

test('parses every flag', () => {
  const args = parseCliArgs([
    '--sites',
    '500',
    '--url',
    'mqtt://127.0.0.1:1884',
    '--seed',
    '3',
    '--time-scale=100',
    '--mix',
    'vebus=1,solarcharger=2,battery=1',
    '--faults',
    'checksumMismatch=0.01,neverReturns=0.005',
    '--timing-spread',
    '0.1',
    '--connect-rate',
    '250',
    '--salt',
    'lab',
    '--password',
    'pw',
  ]);
  expect(args).toEqual({
    sites: 500,
    url: 'mqtt://127.0.0.1:1884',
    seed: 3,
    timeScale: 100,
    mix: { vebus: 1, solarcharger: 2, battery: 1 },
    faults: { checksumMismatch: 0.01, neverReturns: 0.005 },
    timingSpread: 0.1,
    connectRate: 250,
    salt: 'lab',
    logLevel: 'warn',
    credentials: { kind: 'password', password: 'pw' },
  });
});

test('bad flags name the problem', () => {
  const base = ['--sites', '1', '--url', 'mqtt://x:1'];
  expect(() => parseCliArgs(['--url', 'mqtt://x:1', '--password', 'p'])).toThrow(/--sites is required/);
  expect(() => parseCliArgs([...base, '--password', 'p', '--bogus', '1'])).toThrow(/unknown flag --bogus/);
  expect(() => parseCliArgs([...base, '--password', 'p', '--faults', 'meteor=0.1'])).toThrow(
    /unknown fault 'meteor'/,
  );
  expect(() => parseCliArgs([...base, '--password', 'p', '--mix', 'inverter=1'])).toThrow(
    /unknown product kind/,
  );
  expect(() => parseCliArgs([...base, '--password', 'p', '--seed', 'x'])).toThrow(/--seed must be a number/);
  expect(() => parseCliArgs(base)).toThrow(/exactly one of/);
  expect(() => parseCliArgs([...base, '--provision', 'http://api'])).toThrow(/--provision needs --token/);
  expect(() => parseCliArgs(['--help'])).toThrow(UsageError);
  for (const bad of ['1', '-0.1', 'x']) {
    expect(() => parseCliArgs([...base, '--password', 'p', '--timing-spread', bad])).toThrow(
      /--timing-spread must/,
    );
  }
});

test('devices vary in pace unless told otherwise: the typical spread by default, 0 for lock step', () => {
  const base = ['--sites', '1', '--url', 'mqtt://x:1', '--password', 'p'];
  expect(parseCliArgs(base).timingSpread).toBe(TYPICAL_TIMING_SPREAD);
  expect(TYPICAL_TIMING_SPREAD).toBeGreaterThan(0);
  expect(parseCliArgs([...base, '--timing-spread', '0']).timingSpread).toBe(0);
});

test('a secrets file maps each portal id to its secret; a missing one is an error', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sim-secrets-'));
  try {
    const file = path.join(dir, 'secrets.json');
    await writeFile(file, JSON.stringify({ aaaaaaaaaaaa: 's1', bbbbbbbbbbbb: 's2' }));
    const creds = await loadCredentials({ kind: 'secrets-file', path: file }, [
      'aaaaaaaaaaaa',
      'bbbbbbbbbbbb',
    ]);
    expect(creds('bbbbbbbbbbbb')).toBe('s2');
    await expect(loadCredentials({ kind: 'secrets-file', path: file }, ['cccccccccccc'])).rejects.toThrow(
      /no secret for 1 of 1/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('provisioning registers sites in chunks of 1000 with the bearer token', async () => {
  const calls: { url: string; auth: string | null; count: number }[] = [];
  const fakeFetch = (async (url: string, init: RequestInit) => {
    const body = JSON.parse(String(init.body)) as { sites: { portalId: string }[] };
    calls.push({ url, auth: new Headers(init.headers).get('authorization'), count: body.sites.length });
    return new Response(
      JSON.stringify({
        sites: body.sites.map((s) => ({ portalId: s.portalId, secret: `sec-${s.portalId}` })),
      }),
      { status: 201 },
    );
  }) as unknown as typeof fetch;
  const ids = Array.from({ length: 2500 }, (_, i) => i.toString(16).padStart(12, '0'));
  const secrets = await provisionSites('http://api:8080', 'T0K', ids, fakeFetch);
  expect(calls.map((c) => c.count)).toEqual([1000, 1000, 500]);
  expect(calls[0]).toMatchObject({ url: 'http://api:8080/api/sites', auth: 'Bearer T0K' });
  expect(secrets.get(ids[2499])).toBe(`sec-${ids[2499]}`);
  const failing = (async () => new Response('nope', { status: 403 })) as unknown as typeof fetch;
  await expect(provisionSites('http://api', 'bad', ids.slice(0, 1), failing)).rejects.toThrow(/answered 403/);
});
