/**
 * The worker's device link against plain aedes, which handles the packets of one read concurrently:
 * an UNSUBSCRIBE followed at once by a SUBSCRIBE of the same filters can complete after it
 * (moscajs/aedes#469), and the site's answers would stop arriving. The link sends them in order,
 * each after the previous one's acknowledgement, over a connection that writes once per
 * event-loop iteration as the service's does (so both packets would share one read).
 */
import { pino } from 'pino';
import { connectMqtt, waitConnected, type MqttClient } from '../../src/mqtt/connect.js';
import { rpcOutFilter } from '../../src/protocol/index.js';
import { DeviceLink, type SiteListener } from '../../src/update/device-link.js';
import { waitFor } from '../helpers/service-harness.js';
import { startSimFixture, type SimFixture } from '../helpers/sim-fixture.js';

const CLIENT_ID = 'svc-device-link-test';
let f: SimFixture;
let client: MqttClient;
let link: DeviceLink;

const quiet: SiteListener = { onDeviceEvent() {}, onSiteOnline() {}, onDeviceOnline() {} };

beforeAll(async () => {
  f = await startSimFixture({ sites: 2, seed: 3, timeScale: 1000, portalIdSalt: 'link' });
  client = connectMqtt(f.broker.url, { clientId: CLIENT_ID, clean: true }, { coalesceWrites: true });
  await waitConnected(client);
  link = new DeviceLink(client, pino({ level: 'silent' }));
});

afterAll(async () => {
  link?.close();
  await client?.endAsync();
  await f?.close();
});

/** The filters the broker holds for the link's connection. */
function brokerFilters(): string[] {
  const c = (
    f.broker.aedes as unknown as { clients: Record<string, { subscriptions: Record<string, unknown> }> }
  ).clients[CLIENT_ID];
  return Object.keys(c?.subscriptions ?? {});
}

test('a site released and watched again in the same tick still gets its answers', async () => {
  const site = f.fleet.sites[0];
  const device = site.devices[0];
  const release = await link.watch(site.portalId, quiet);
  release();
  const again = await link.watch(site.portalId, quiet);
  expect(brokerFilters()).toContain(rpcOutFilter(site.portalId));
  const outcome = await link.call(site.portalId, 'firmware.status', { device: device.local }, 3000);
  expect(outcome).toMatchObject({ ok: true, result: { version: device.version } });
  again();
  await waitFor(() => !brokerFilters().includes(rpcOutFilter(site.portalId)), 3000, 'unsubscribed');
});

test('repeated churn ends subscribed when the last call was a watch, unsubscribed when it was a release', async () => {
  const site = f.fleet.sites[1];
  const device = site.devices[0];
  let release = await link.watch(site.portalId, quiet);
  for (let i = 0; i < 5; i++) {
    release();
    release = await link.watch(site.portalId, quiet);
  }
  const outcome = await link.call(site.portalId, 'firmware.status', { device: device.local }, 3000);
  expect(outcome).toMatchObject({ ok: true });
  release();
  const pending = link.watch(site.portalId, quiet);
  (await pending)();
  await waitFor(() => !brokerFilters().includes(rpcOutFilter(site.portalId)), 3000, 'unsubscribed');
  expect(link.watchedSites()).toBe(0);
});
