/**
 * The portal's fleet inventory (web/src/fleet-store.ts) over a real embedded broker and a real MQTT
 * connection over WebSocket: a retained copy the broker sends for a SUBSCRIBE is the state it held
 * when it read it, and must not replace a newer record already published to the page. A device
 * record published without RETAIN is newer than the retained one on its topic: the same order a
 * page can see when the retained store is read just before a device's new record is stored.
 * The REST snapshot is not what is tested here: its client returns an empty list.
 */
import type { ApiClient } from '../../web/src/api-client.js';
import { FleetStore } from '../../web/src/fleet-store.js';
import { LiveConnection } from '../../web/src/live-connection.js';
import { fleetDeviceTopic, type DeviceRecord } from '../../src/protocol/index.js';
import { connectMqtt } from '../../src/mqtt/connect.js';
import { browserClientIdPrefix } from '../../broker/acl.js';
import { BrokerHarness, SERVICE_ACCOUNT, viewerAccount } from '../helpers/broker-harness.js';
import { within } from '../helpers/within.js';

// The module reads these browser globals; Node 20 has `crypto` but neither of these.
const g = globalThis as Record<string, unknown>;
g.location ??= { protocol: 'http:' };
g.navigator ??= { onLine: true };

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

let broker: BrokerHarness;
let live: LiveConnection;
let fleet: FleetStore;

beforeEach(async () => {
  broker = await BrokerHarness.start({ svc: SERVICE_ACCOUNT, alice: viewerAccount('*') });
  live = new LiveConnection({
    credentials: async () => ({
      url: broker.url('ws'),
      username: 'alice',
      password: 'token-1',
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      clientIdPrefix: browserClientIdPrefix('alice'),
    }),
    connect: (url, options) => connectMqtt(url, options),
    reconnectPeriodMs: 100,
  });
  const api = { devices: async () => [] } as unknown as ApiClient;
  fleet = new FleetStore(api, live);
  await live.start();
});

afterEach(async () => {
  fleet.close();
  live.close();
  await broker.close();
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

/** Publishes a device record as the service does (retained) or only to those subscribed now. */
async function publish(version: string, retain: boolean): Promise<void> {
  const svc = await broker.connect('tcp', 'svc', `svc-${Math.random().toString(16).slice(2)}`);
  await svc.publishAsync(fleetDeviceTopic(DEVICE), JSON.stringify(record(version)), { qos: 1, retain });
  await svc.endAsync();
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
  // The service stores the record that changed while the page was away, and the connection drops.
  await publish('v1.62', true);
  await fleetShows('v1.62');
  const pages = browserClients();
  expect(pages).toHaveLength(1);
  pages[0].conn.destroy();
  await publish('v1.63', true);
  // Published while no connection was subscribed: the new subscription's retained copy brings it.
  await fleetShows('v1.63');
});

/** The broker's clients other than the service's publishers (aedes' `clients` table). */
function browserClients(): { conn: { destroy(): void } }[] {
  const all = (broker.broker.aedes as unknown as { clients: Record<string, { conn: { destroy(): void } }> })
    .clients;
  return Object.entries(all)
    .filter(([id]) => !id.startsWith('svc-'))
    .map(([, client]) => client);
}
