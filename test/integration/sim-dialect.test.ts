/**
 * The simulator speaks the Venus OS MQTT dialect (dbus-flashmq) against a real broker: discovery by
 * retained Serial, keepalive-gated notifications and heartbeat, full republish, reads, writes, the
 * Last Will, and a clean stop.
 */
import { encodeFirmwareVersion } from '../../src/protocol/index.js';
import { startFleet, type Fleet, type SimSite } from '../../devices-sim/index.js';
import { MqttProbe } from '../helpers/mqtt-probe.js';
import { startPlainBroker, type PlainBroker } from '../helpers/plain-broker.js';

/** 60 s alive window → 300 ms; 3 s heartbeat → 15 ms (floored to 20 ms). */
const TIME_SCALE = 200;
const ALIVE_MS = 60_000 / TIME_SCALE;

let broker: PlainBroker;
let fleet: Fleet;
let probe: MqttProbe;

beforeAll(async () => {
  broker = await startPlainBroker();
  fleet = await startFleet({
    url: broker.url,
    sites: 10,
    seed: 11,
    timeScale: TIME_SCALE,
    portalIdSalt: 'dialect',
    credentials: () => 'unused',
    reconnect: { minMs: 20, maxMs: 100 },
  });
  probe = await MqttProbe.connect(broker.url);
});

afterAll(async () => {
  await probe?.close();
  await fleet?.stop();
  await broker?.close();
});

/** Each test takes its own site so alive windows do not leak between tests. */
let nextSite = 0;
async function freshSite(): Promise<SimSite> {
  const site = fleet.sites[nextSite++];
  await probe.subscribe(`N/${site.portalId}/#`);
  return site;
}

function topicOf(site: SimSite, rest: string): string {
  return `N/${site.portalId}/${rest}`;
}

test('every site announces itself with a retained Serial that a late subscriber discovers', async () => {
  const late = await MqttProbe.connect(broker.url);
  try {
    await late.subscribe('N/+/system/0/Serial');
    for (const site of fleet.sites) {
      const m = await late.next((x) => x.topic === `N/${site.portalId}/system/0/Serial`);
      expect(m.retain).toBe(true);
      expect(JSON.parse(m.text)).toEqual({ value: site.portalId });
    }
  } finally {
    await late.close();
  }
});

test('an empty keepalive republishes every topic of every device, then full_publish_completed', async () => {
  const site = await freshSite();
  const from = probe.mark();
  probe.publish(`R/${site.portalId}/keepalive`);
  const done = await probe.next((m) => m.topic === topicOf(site, 'full_publish_completed'), 5000, from);
  expect(JSON.parse(done.text)).toEqual({ value: expect.any(Number) });
  expect(Math.abs(JSON.parse(done.text).value - Date.now() / 1000)).toBeLessThan(5);
  const got = new Map(
    probe.since(from, (m) => m.at <= done.at).map((m) => [m.topic, JSON.parse(m.text).value]),
  );
  expect(got.get(topicOf(site, 'system/0/Serial'))).toBe(site.portalId);
  for (const d of site.devices) {
    const base = `${d.service}/${d.instance}`;
    for (const path of [
      'Mgmt/ProcessName',
      'Mgmt/ProcessVersion',
      'Mgmt/Connection',
      'DeviceInstance',
      'ProductId',
      'ProductName',
      'FirmwareVersion',
      'HardwareVersion',
      'Connected',
      'Serial',
      'CustomName',
    ]) {
      expect(got.has(topicOf(site, `${base}/${path}`))).toBe(true);
    }
    expect(got.get(topicOf(site, `${base}/ProductId`))).toBe(d.product.productId);
    expect(got.get(topicOf(site, `${base}/Connected`))).toBe(1);
    // The raw encoding of the family: string for the GX, integers for VE.Direct and VE.Bus.
    expect(got.get(topicOf(site, `${base}/FirmwareVersion`))).toBe(
      encodeFirmwareVersion(d.product.family, d.version),
    );
  }
  expect(got.get(topicOf(site, 'platform/0/Device/Model'))).toBe(site.platform.product.name);
  expect(got.get(topicOf(site, 'platform/0/Firmware/State'))).toBe(1000);
  expect(got.get(topicOf(site, 'platform/0/Firmware/Installed/Version'))).toBe(site.platform.version);

  // Only the Serial is retained: a subscriber arriving now gets nothing else.
  const late = await MqttProbe.connect(broker.url);
  try {
    await late.subscribe(`N/${site.portalId}/#`);
    await late.next((m) => m.topic === topicOf(site, 'system/0/Serial'));
    late.publish(`R/${site.portalId}/platform/0/ProductId`);
    await late.next((m) => m.topic === topicOf(site, 'platform/0/ProductId'));
    expect(late.messages.filter((m) => m.retain).map((m) => m.topic)).toEqual([
      topicOf(site, 'system/0/Serial'),
    ]);
  } finally {
    await late.close();
  }
});

test('suppress-republish keeps the site alive without a republish; the heartbeat starts at once', async () => {
  const site = await freshSite();
  const from = probe.mark();
  probe.publish(`R/${site.portalId}/keepalive`, { 'keepalive-options': ['suppress-republish'] });
  const hb = await probe.next((m) => m.topic === topicOf(site, 'heartbeat'), 5000, from);
  expect(JSON.parse(hb.text)).toEqual({ value: expect.any(Number) });
  expect(site.alive).toBe(true);
  // A read still answers: it is the marker that everything before it has been delivered.
  probe.publish(`R/${site.portalId}/platform/0/ProductId`);
  await probe.next((m) => m.topic === topicOf(site, 'platform/0/ProductId'), 5000, from);
  expect(
    probe.since(
      from,
      (m) => m.topic.endsWith('/full_publish_completed') || m.topic.endsWith('/FirmwareVersion'),
    ),
  ).toEqual([]);
});

test('full-publish-completed-echo comes back in the completion message', async () => {
  const site = await freshSite();
  const from = probe.mark();
  probe.publish(`R/${site.portalId}/keepalive`, {
    'keepalive-options': [{ 'full-publish-completed-echo': 'B9FMlGWoCcfMKc' }],
  });
  const done = await probe.next((m) => m.topic === topicOf(site, 'full_publish_completed'), 5000, from);
  expect(JSON.parse(done.text)).toEqual({
    value: expect.any(Number),
    'full-publish-completed-echo': 'B9FMlGWoCcfMKc',
  });
});

test('full republishes are rate-limited to 3 per second; extra keepalives only renew', async () => {
  const site = await freshSite();
  const from = probe.mark();
  for (let i = 0; i < 5; i++)
    probe.publish(`R/${site.portalId}/keepalive`, {
      'keepalive-options': [{ 'full-publish-completed-echo': `k${i}` }],
    });
  probe.publish(`R/${site.portalId}/platform/0/ProductId`);
  await probe.next(
    (m) =>
      m.topic === topicOf(site, 'platform/0/ProductId') &&
      probe.since(from, (x) => x.topic.endsWith('full_publish_completed')).length >= 3,
    5000,
    from,
  );
  const echoes = probe
    .since(from, (m) => m.topic === topicOf(site, 'full_publish_completed'))
    .map((m) => JSON.parse(m.text)['full-publish-completed-echo']);
  expect(echoes).toEqual(['k0', 'k1', 'k2']);
});

test('the heartbeat runs while alive and everything stops 60 s (scaled) after the last keepalive', async () => {
  const site = await freshSite();
  const from = probe.mark();
  const sentAt = performance.now();
  probe.publish(`R/${site.portalId}/keepalive`, { 'keepalive-options': ['suppress-republish'] });
  await probe.next((m) => m.topic === topicOf(site, 'heartbeat'), 5000, from);
  // Renew half-way: the window now runs from the second keepalive.
  await new Promise((r) => setTimeout(r, ALIVE_MS / 2));
  const renewedAt = performance.now();
  probe.publish(`R/${site.portalId}/keepalive`, { 'keepalive-options': ['suppress-republish'] });
  // Nothing announces the end of the window: wait it out with a margin, then look at what came.
  await new Promise((r) => setTimeout(r, ALIVE_MS + 250));
  expect(site.alive).toBe(false);
  const beats = probe.since(from, (m) => m.topic === topicOf(site, 'heartbeat')).map((m) => m.at);
  expect(beats.length).toBeGreaterThanOrEqual(8);
  const last = beats[beats.length - 1];
  expect(last - sentAt).toBeGreaterThan(ALIVE_MS); // the renewal extended the window
  expect(last - renewedAt).toBeLessThan(ALIVE_MS + 60);
  // Changes are no longer published; a read still is.
  const quiet = probe.mark();
  probe.publish(`W/${site.portalId}/platform/0/CustomName`, { value: 'Boat' });
  probe.publish(`R/${site.portalId}/platform/0/ProductId`);
  await probe.next((m) => m.topic === topicOf(site, 'platform/0/ProductId'), 5000, quiet);
  expect(probe.since(quiet, (m) => m.topic === topicOf(site, 'heartbeat'))).toEqual([]);
});

test('the legacy keepalive on R/<id>/system/0/Serial works too', async () => {
  const site = await freshSite();
  const from = probe.mark();
  probe.publish(`R/${site.portalId}/system/0/Serial`);
  await probe.next((m) => m.topic === topicOf(site, 'full_publish_completed'), 5000, from);
  expect(site.alive).toBe(true);
});

test('reads answer one leaf or a whole subtree, alive or not', async () => {
  const site = await freshSite();
  expect(site.alive).toBe(false);
  const solar = site.devices.find((d) => d.service === 'solarcharger')!;
  let from = probe.mark();
  probe.publish(`R/${site.portalId}/solarcharger/${solar.instance}/FirmwareVersion`);
  const leaf = await probe.next(
    (m) => m.topic === topicOf(site, `solarcharger/${solar.instance}/FirmwareVersion`),
    5000,
    from,
  );
  expect(JSON.parse(leaf.text)).toEqual({ value: encodeFirmwareVersion('vedirect', solar.version) });

  from = probe.mark();
  probe.publish(`R/${site.portalId}/platform/0/Firmware`);
  probe.publish(`R/${site.portalId}/platform/0/ProductId`);
  await probe.next((m) => m.topic === topicOf(site, 'platform/0/ProductId'), 5000, from);
  expect(
    probe
      .since(from, (m) => m.topic.includes('/Firmware/'))
      .map((m) => m.topic.split('/platform/0/')[1])
      .sort(),
  ).toEqual([
    'Firmware/Installed/Build',
    'Firmware/Installed/Version',
    'Firmware/Progress',
    'Firmware/State',
  ]);
});

test('a write to CustomName changes it and publishes it; other writes are ignored', async () => {
  const site = await freshSite();
  const battery = site.devices.find((d) => d.service === 'battery')!;
  const base = `battery/${battery.instance}`;
  const from = probe.mark();
  probe.publish(`W/${site.portalId}/${base}/CustomName`, { value: 'House bank' });
  const m = await probe.next((x) => x.topic === topicOf(site, `${base}/CustomName`), 5000, from);
  expect(JSON.parse(m.text)).toEqual({ value: 'House bank' });
  expect(battery.customName).toBe('House bank');
  const before = battery.version;
  const mark = probe.mark();
  probe.publish(`W/${site.portalId}/${base}/FirmwareVersion`, { value: 1 });
  probe.publish(`W/${site.portalId}/${base}/CustomName`, 'not json');
  probe.publish(`R/${site.portalId}/${base}/CustomName`);
  const again = await probe.next((x) => x.topic === topicOf(site, `${base}/CustomName`), 5000, mark);
  expect(JSON.parse(again.text)).toEqual({ value: 'House bank' });
  expect(battery.version).toBe(before);
});

test('a dropped link shows the site offline through its Last Will, then it reconnects', async () => {
  const site = await freshSite();
  const from = probe.mark();
  site.dropLink();
  const will = await probe.next(
    (m) => m.topic === topicOf(site, 'system/0/Serial') && m.text === '{"value":null}',
    5000,
    from,
  );
  const back = await probe.next(
    (m) => m.topic === topicOf(site, 'system/0/Serial') && m.text.includes(site.portalId),
    5000,
    probe.messages.indexOf(will),
  );
  expect(JSON.parse(back.text)).toEqual({ value: site.portalId });
  await fleet.waitConnected(5000);
  expect(site.connected).toBe(true);
});

test('stop() marks every site offline with a retained null Serial and closes every connection', async () => {
  const small = await startFleet({
    url: broker.url,
    sites: 5,
    seed: 2,
    portalIdSalt: 'dialect-stop',
    credentials: () => 'x',
    timeScale: 1000,
  });
  const before = broker.aedes.connectedClients;
  await small.stop();
  expect(broker.aedes.connectedClients).toBe(before - 5);
  const late = await MqttProbe.connect(broker.url);
  try {
    await late.subscribe('N/+/system/0/Serial');
    for (const site of small.sites) {
      const m = await late.next((x) => x.topic === `N/${site.portalId}/system/0/Serial`);
      expect(m.text).toBe('{"value":null}');
    }
  } finally {
    await late.close();
  }
  await expect(small.waitConnected(10)).rejects.toThrow(/stopped/);
});
