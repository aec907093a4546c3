/**
 * FleetMonitor.stop() lets the handlers already running finish: a site that goes offline as the
 * service stops (its gateway or the simulator stopping in the same moment) has its devices marked
 * offline in Redis and published before stop() resolves, so before the service closes its broker
 * and Redis behind the monitor. Before, stop() only unsubscribed, and those handlers published into
 * a closed broker ("status publish failed: mqemitter is closed" at every demo's end). A handler that
 * never finishes holds stop() up only for its limit, with a warning.
 * Real embedded broker, real Redis; the device store is the real one with a gate in front of its
 * site lookup, so the test decides when the handler may go on.
 */
import { Redis } from 'ioredis';
import type { MqttClient } from 'mqtt';
import { pino } from 'pino';
import { FleetMonitor } from '../../src/fleet/fleet-monitor.js';
import {
  fleetDeviceTopic,
  formatDeviceId,
  serialTopic,
  type DeviceRecord,
} from '../../src/protocol/index.js';
import { StatusPublisher } from '../../src/status/status-publisher.js';
import { DeviceStore } from '../../src/store/device-store.js';
import { JobStore } from '../../src/store/job-store.js';
import { createKeys } from '../../src/store/keys.js';
import { BrokerHarness, WARN, type LogLine } from '../helpers/broker-harness.js';
import { deleteKeys } from '../helpers/redis-keys.js';

const PORTAL = 'c0619ab1d2e3';
const T0 = '2026-12-07T00:00:00.000Z';

/** The real store; `siteDeviceIds` waits at the gate while it is closed, and says when it got there. */
class GatedDeviceStore extends DeviceStore {
  gate: Promise<void> = Promise.resolve();
  arrived: () => void = () => undefined;
  readonly written: string[] = [];

  override async siteDeviceIds(portalId: string): Promise<string[]> {
    this.arrived();
    await this.gate;
    return super.siteDeviceIds(portalId);
  }

  override async upsert(records: DeviceRecord[]): Promise<void> {
    await super.upsert(records);
    this.written.push(...records.map((r) => r.deviceId));
  }
}

function device(instance: number): DeviceRecord {
  return {
    deviceId: formatDeviceId({ portalId: PORTAL, service: 'solarcharger', instance }),
    portalId: PORTAL,
    service: 'solarcharger',
    instance,
    productId: 0xa053,
    productName: 'SmartSolar MPPT 75/15',
    customName: null,
    version: 'v1.59',
    online: true,
    lastSeenAt: T0,
    lastUpdate: null,
  };
}

const prefix = `test-monitor-stop-${process.pid}`;
const keys = createKeys(prefix);
const logs: LogLine[] = [];
const logger = pino(
  { level: 'info' },
  { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) },
);
let broker: BrokerHarness;
let redis: Redis;
let svc: MqttClient;
let store: GatedDeviceStore;
let monitor: FleetMonitor;
let publisher: StatusPublisher;

beforeEach(async () => {
  logs.length = 0;
  broker = await BrokerHarness.start({
    svc: { password: 'pw', principal: () => ({ kind: 'service', name: 'svc' }) },
  });
  redis = new Redis('redis://127.0.0.1:6379');
  await deleteKeys(redis, `${prefix}:*`);
  store = new GatedDeviceStore(redis, keys);
  await new DeviceStore(redis, keys).upsert([device(0), device(1), device(2)]);
  svc = await broker.connect('tcp', 'svc', `monitor-stop-${Math.random().toString(16).slice(2)}`);
  publisher = new StatusPublisher(svc, logger);
  monitor = new FleetMonitor(
    svc,
    store,
    new JobStore(redis, keys),
    publisher,
    logger,
    undefined,
    undefined,
    broker.broker,
  );
  await monitor.start();
});

afterEach(async () => {
  await broker.close();
  await deleteKeys(redis, `${prefix}:*`);
  await redis.quit();
});

/** The device's retained record on its fleet topic, as a new subscriber gets it. */
async function retainedDevice(deviceId: string): Promise<DeviceRecord> {
  const reader = await broker.connect('tcp', 'svc', `reader-${Math.random().toString(16).slice(2)}`);
  const got = new Promise<DeviceRecord>((resolve) =>
    reader.on('message', (_t, payload) => resolve(JSON.parse(payload.toString()) as DeviceRecord)),
  );
  await reader.subscribeAsync(fleetDeviceTopic(deviceId), { qos: 1 });
  return got;
}

/** Publishes the site's null Serial (its last will) and resolves once the monitor's handler waits at the gate. */
async function siteGoesOfflineAtTheGate(): Promise<() => void> {
  let open!: () => void;
  store.gate = new Promise((resolve) => (open = resolve));
  const arrived = new Promise<void>((resolve) => (store.arrived = resolve));
  await svc.publishAsync(serialTopic(PORTAL), JSON.stringify({ value: null }), { qos: 1 });
  await arrived;
  return open;
}

test('stop() resolves only after the running handler has marked the site offline and published it', async () => {
  const open = await siteGoesOfflineAtTheGate();
  const order: string[] = [];
  const stopping = monitor.stop().then(() => void order.push('stopped'));
  // Several Redis round trips: time enough for a stop() that only unsubscribes to have resolved.
  for (let i = 0; i < 5; i++) await redis.ping();
  order.push('gate opened');
  open();
  await stopping;

  expect(order).toEqual(['gate opened', 'stopped']);
  expect(store.written).toHaveLength(3);
  const stored = await store.getMany([0, 1, 2].map((i) => device(i).deviceId));
  expect(stored.map((d) => d?.online)).toEqual([false, false, false]);
  // Published while the broker was there: the retained records say offline, nothing failed.
  await publisher.flush();
  expect((await retainedDevice(device(2).deviceId)).online).toBe(false);
  expect(logs.filter((l) => l.level >= WARN)).toEqual([]);
  expect(logs.some((l) => l.msg === 'site offline' && l.portalId === PORTAL)).toBe(true);
});

test('a handler that never finishes holds stop() up only for its limit, with a warning', async () => {
  const open = await siteGoesOfflineAtTheGate();
  try {
    await monitor.stop(150);
    const warned = logs.find((l) => l.msg === 'fleet monitor stopped with handlers still running');
    expect(warned).toMatchObject({ running: 1, waitMs: 150 });
    expect(store.written).toEqual([]);
  } finally {
    open();
  }
});
