/**
 * The portal's fleet inventory (web/src/fleet-store.ts) against the real service: its REST snapshot
 * through the portal's own ApiClient with a viewer's token, and its live records through a real
 * LiveConnection over WebSocket with the credentials the API hands out. A retained copy the broker
 * sends for a SUBSCRIBE is the state it held when it read it, and must not replace a newer record
 * already published to the page. A device record published without RETAIN is newer than the
 * retained one on its topic: the same order a page can see when the retained store is read just
 * before a device's new record is stored.
 */
import type { PublishPacket } from 'aedes';
import { ApiClient } from '../../web/src/api-client.js';
import { FleetStore } from '../../web/src/fleet-store.js';
import { LiveConnection } from '../../web/src/live-connection.js';
import { fleetDeviceTopic, type DeviceRecord } from '../../src/protocol/index.js';
import { connectMqtt } from '../../src/mqtt/connect.js';
import { startHarness, type Harness } from '../helpers/service-harness.js';
import { within } from '../helpers/within.js';

// The modules read these browser globals; Node 20 has `crypto` but neither of these. The portal's
// ApiClient requests `/api/…` relative to its page: here relative to the service.
const g = globalThis as Record<string, unknown>;
g.location ??= { protocol: 'http:' };
g.navigator ??= { onLine: true };
const nodeFetch = globalThis.fetch;
globalThis.fetch = (input, init) => nodeFetch(new URL(String(input), h.base), init);

const DEVICE = 'c0619ab1d2e3.solarcharger.0';

function record(version: string): DeviceRecord {
  return {
    deviceId: DEVICE,
    portalId: 'c0619ab1d2e3',
    service: 'solarcharger',
    instance: 0,
    productId: 0xa058,
    productName: 'SmartSolar MPPT 150/35',
    customName: null,
    version,
    online: true,
    lastSeenAt: '2026-12-07T00:00:00.000Z',
    lastUpdate: null,
  };
}

let h: Harness;
let api: ApiClient;
let live: LiveConnection;
let fleet: FleetStore;

beforeAll(async () => {
  h = await startHarness();
});

afterAll(async () => {
  await h?.close();
  globalThis.fetch = nodeFetch;
});

beforeEach(async () => {
  api = new ApiClient(h.viewerToken);
  live = new LiveConnection({
    credentials: () => api.mqttCredentials(),
    connect: (url, options) => connectMqtt(url, options),
    reconnectPeriodMs: 100,
  });
  fleet = new FleetStore(api, live);
  await live.start();
});

afterEach(async () => {
  fleet.close();
  live.close();
  // Each test starts from no record of the device: an empty retained publish clears it.
  await publish(null, true);
});

/** Resolves once the fleet store holds `version` for the device. */
function fleetShows(version: string): Promise<void> {
  return within(
    new Promise<void>((resolve) => {
      const check = () => {
        if (fleet.get(DEVICE)?.version === version) resolve();
      };
      fleet.onChange(check);
      check();
    }),
    5000,
    `the fleet store showing ${version}`,
  );
}

/** Publishes a device record through the service's broker, as the service does (retained) or only to those subscribed now. */
function publish(version: string | null, retain: boolean): Promise<void> {
  const packet = {
    cmd: 'publish',
    topic: fleetDeviceTopic(DEVICE),
    payload: Buffer.from(version === null ? '' : JSON.stringify(record(version))),
    qos: 1,
    retain,
    dup: false,
  } as PublishPacket;
  return new Promise((resolve, reject) =>
    h.service.broker!.aedes.publish(packet, (err) => (err ? reject(err) : resolve())),
  );
}

/** The page loads the fleet with v1.59 retained, then gets v1.61 published without RETAIN. */
async function loadedThenPublished(): Promise<void> {
  await publish('v1.59', true);
  await fleet.load();
  await fleetShows('v1.59');
  await publish('v1.61', false);
  await fleetShows('v1.61');
}

test('a retained copy sent after a newer published record does not bring the old record back', async () => {
  await loadedThenPublished();

  // Another view subscribes to the same filter: the broker sends its retained copies again, to
  // the connection, so the fleet store gets the old record once more, after the newer one.
  const copies: string[] = [];
  const copied = new Promise<void>((resolve) => {
    const other = live.subscribe(fleetDeviceTopic('+'), (_topic, payload, origin) => {
      copies.push(`${(payload as DeviceRecord).version} retained=${origin.retained}`);
      other.close();
      resolve();
    });
  });
  await within(copied, 5000, 'the retained copy for the second subscription');
  expect(copies).toEqual(['v1.59 retained=true']);
  expect(fleet.get(DEVICE)?.version).toBe('v1.61');
});

test("after a reconnect the new subscription's retained copies count again", async () => {
  await loadedThenPublished();
  // A retained publish reaches a subscribed page as a published record (RETAIN cleared) and is kept.
  await publish('v1.62', true);
  await fleetShows('v1.62');
  // The page's connection drops; the record changes while no connection is subscribed.
  const { clientIdPrefix } = await api.mqttCredentials();
  const clients = (
    h.service.broker!.aedes as unknown as {
      clients: Record<string, { id: string; conn: { destroy(): void } }>;
    }
  ).clients;
  const pages = Object.values(clients).filter((c) => c.id.startsWith(clientIdPrefix ?? 'web-'));
  expect(pages).toHaveLength(1);
  pages[0].conn.destroy();
  await publish('v1.63', true);
  // Published while no connection was subscribed: the new subscription's retained copy brings it.
  await fleetShows('v1.63');
});
