/**
 * The fleet as a whole: seeded and reproducible, paced connections, recovery from a broker restart
 * with jittered back-off, and a clear failure when sites cannot log in.
 */
import { planSite, portalIdsFor, startFleet, type Fleet } from '../../devices-sim/index.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { startPlainBroker, type PlainBroker } from '../helpers/plain-broker.js';

let broker: PlainBroker;
const fleets: Fleet[] = [];

beforeAll(async () => {
  broker = await startPlainBroker();
});

afterEach(async () => {
  for (const f of fleets.splice(0)) await f.stop();
});

afterAll(async () => {
  await broker?.close();
});

async function fleetOf(
  options: Partial<Parameters<typeof startFleet>[0]> & { sites: number },
): Promise<Fleet> {
  const fleet = await startFleet({ url: broker.url, credentials: () => 'x', timeScale: 1000, ...options });
  fleets.push(fleet);
  return fleet;
}

test('the same seed and salt give the same fleet: portal ids, products, versions', async () => {
  const a = await fleetOf({ sites: 12, seed: 9, portalIdSalt: 'same' });
  const snapshot = a
    .devices()
    .map(({ deviceId, productId, version, productName }) => ({ deviceId, productId, version, productName }));
  await a.stop();
  const b = await fleetOf({ sites: 12, seed: 9, portalIdSalt: 'same' });
  expect(
    b.devices().map(({ deviceId, productId, version, productName }) => ({
      deviceId,
      productId,
      version,
      productName,
    })),
  ).toEqual(snapshot);
  expect(b.sites.map((s) => s.portalId)).toEqual(portalIdsFor(12, 9, 'same'));
  expect(b.site(b.sites[3].portalId)).toBe(b.sites[3]);
  expect(b.site('000000000000')).toBeUndefined();
  for (const site of b.sites)
    expect(site.devices.map((d) => d.version)).toEqual(planSite(9, site.portalId).map((d) => d.version));
  expect(b.stats()).toEqual({ connected: 12, updating: 0, succeeded: 0, failed: 0, sites: 12 });
  const kinds = new Set(b.devices().map((d) => d.service));
  expect([...kinds].sort()).toEqual(['battery', 'platform', 'solarcharger', 'vebus']);
});

test('mix and initial versions are honoured', async () => {
  const fleet = await fleetOf({
    sites: 3,
    portalIdSalt: 'mix',
    mix: { vebus: 0, solarcharger: 3, battery: 2 },
    initialVersions: { solarcharger: 'v1.50', platform: 'v3.10' },
  });
  for (const site of fleet.sites) {
    expect(site.devices.map((d) => d.service)).toEqual([
      'platform',
      'solarcharger',
      'solarcharger',
      'solarcharger',
      'battery',
      'battery',
    ]);
  }
  expect(
    new Set(
      fleet
        .devices()
        .filter((d) => d.service === 'solarcharger')
        .map((d) => d.version),
    ),
  ).toEqual(new Set(['v1.50']));
  expect(fleet.truth.devicesOnVersion('v3.10')).toHaveLength(3);
});

test('connections are paced at connectRatePerSec', async () => {
  const started = performance.now();
  const fleet = await fleetOf({ sites: 60, portalIdSalt: 'paced', connectRatePerSec: 200 });
  const elapsed = performance.now() - started;
  expect(fleet.stats().connected).toBe(60);
  // 60 sites at 200/s with a 10-site burst: at least ~250 ms.
  expect(elapsed).toBeGreaterThanOrEqual(220);
});

test('after a broker restart every site comes back with its retained Serial', async () => {
  const own = await startPlainBroker();
  let restarted: PlainBroker | null = null;
  try {
    const fleet = await startFleet({
      url: own.url,
      sites: 20,
      portalIdSalt: 'restart',
      credentials: () => 'x',
      timeScale: 1000,
      reconnect: { minMs: 50, maxMs: 200 },
    });
    fleets.push(fleet);
    await own.close();
    restarted = await startPlainBroker({ port: own.port });
    await fleet.waitConnected(10_000);
    expect(fleet.stats().connected).toBe(20);
    const probe = await MqttProbe.connect(restarted.url);
    try {
      await probe.subscribe('N/+/system/0/Serial');
      for (const site of fleet.sites) {
        const m = await probe.next((x) => x.topic === `N/${site.portalId}/system/0/Serial`);
        expect(JSON.parse(m.text)).toEqual({ value: site.portalId });
      }
    } finally {
      await probe.close();
    }
    await fleet.stop();
  } finally {
    await restarted?.close();
  }
});

test('sites that cannot log in keep retrying; startFleet reports how many connected and cleans up', async () => {
  const strict = await startPlainBroker({ authenticate: (user, password) => password === `secret-${user}` });
  try {
    const ids = portalIdsFor(4, 1, 'auth');
    const credentials = async (portalId: string) => (portalId === ids[2] ? 'wrong' : `secret-${portalId}`);
    await expect(
      startFleet({
        url: strict.url,
        sites: 4,
        portalIdSalt: 'auth',
        credentials,
        connectTimeoutMs: 800,
        reconnect: { minMs: 50, maxMs: 100 },
      }),
    ).rejects.toThrow(/only 3 of 4 sites connected after 800 ms/);
    expect(strict.aedes.connectedClients).toBe(0);
  } finally {
    await strict.close();
  }
});

test('bad options are refused with a message naming the option', async () => {
  const base = { url: broker.url, sites: 1, credentials: () => 'x' };
  await expect(startFleet({ ...base, url: 'http://x' })).rejects.toThrow(/not MQTT/);
  await expect(startFleet({ ...base, sites: -1 })).rejects.toThrow(/sites must be/);
  await expect(startFleet({ ...base, timeScale: 0 })).rejects.toThrow(/timeScale/);
  await expect(startFleet({ ...base, faults: { neverReturns: 2 } })).rejects.toThrow(/neverReturns=2/);
  await expect(startFleet({ ...base, mix: { vebus: -1 } })).rejects.toThrow(/mix vebus=-1/);
  await expect(startFleet({ ...base, durations: { gxRebootSec: -5 } })).rejects.toThrow(/gxRebootSec/);
});
