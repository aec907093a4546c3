/**
 * Product changes outside a full republish: a product that reboots after its update leaves the bus
 * (`Connected` 0, then an empty payload on each of its topics) and comes back with its new version.
 * The fleet monitor applies the changes of every product that arrive together as one batch (one
 * read and one write in Redis for all of them), and every product still ends with its last values,
 * stored and published. A product that reports the target version after its execution ended
 * without success gets it recorded, with a warning in the job's log.
 * Real embedded broker, real Redis; the device store is the real one, counting its calls.
 */
import { jest } from '@jest/globals';
import { Redis } from 'ioredis';
import type { MqttClient } from 'mqtt';
import { pino } from 'pino';
import { FleetMonitor, REINVENTORY_MIN_INTERVAL_MS } from '../../src/fleet/fleet-monitor.js';
import {
  encodeFirmwareVersion,
  fleetDeviceTopic,
  formatDeviceId,
  fullPublishCompletedTopic,
  keepaliveTopic,
  notificationTopic,
  serialTopic,
  type DeviceRecord,
  type LastUpdate,
} from '../../src/protocol/index.js';
import { StatusPublisher } from '../../src/status/status-publisher.js';
import { DeviceStore } from '../../src/store/device-store.js';
import { JobStore } from '../../src/store/job-store.js';
import { createKeys } from '../../src/store/keys.js';
import { BrokerHarness, SERVICE_ACCOUNT, WARN, type LogLine } from '../helpers/broker-harness.js';
import { deleteKeys } from '../helpers/redis-keys.js';
import { within } from '../helpers/within.js';

const PORTALS = ['c0619ab1d2e3', 'c0619ab1d2e4', 'c0619ab1d2e5'];
const PRODUCTS_PER_SITE = 10;
const PRODUCT_ID = 0xa058;
const PRODUCT_NAME = 'SmartSolar MPPT 150/35';
const T0 = '2026-12-07T00:00:00.000Z';

/** The real store, counting the calls that go to Redis. */
class CountingDeviceStore extends DeviceStore {
  reads = 0;
  writes = 0;

  override async get(deviceId: string): Promise<DeviceRecord | null> {
    this.reads++;
    return super.get(deviceId);
  }

  override async getMany(deviceIds: string[]): Promise<(DeviceRecord | null)[]> {
    this.reads++;
    return super.getMany(deviceIds);
  }

  override async upsert(records: DeviceRecord[]): Promise<void> {
    this.writes++;
    return super.upsert(records);
  }
}

interface Product {
  portalId: string;
  instance: number;
  deviceId: string;
}

const products: Product[] = PORTALS.flatMap((portalId) =>
  Array.from({ length: PRODUCTS_PER_SITE }, (_, instance) => ({
    portalId,
    instance,
    deviceId: formatDeviceId({ portalId, service: 'solarcharger', instance }),
  })),
);

function record(p: Product, lastUpdate: LastUpdate | null = null): DeviceRecord {
  return {
    deviceId: p.deviceId,
    portalId: p.portalId,
    service: 'solarcharger',
    instance: p.instance,
    productId: PRODUCT_ID,
    productName: PRODUCT_NAME,
    customName: null,
    version: 'v1.59',
    online: true,
    lastSeenAt: T0,
    lastUpdate,
  };
}

const prefix = `test-monitor-changes-${process.pid}`;
const keys = createKeys(prefix);
const logs: LogLine[] = [];
let onLog: (line: LogLine) => void = () => undefined;
const logger = pino(
  { level: 'info' },
  {
    write: (text: string) => {
      const line = JSON.parse(text) as LogLine;
      logs.push(line);
      onLog(line);
    },
  },
);
let broker: BrokerHarness;
let redis: Redis;
let site: MqttClient;
let store: CountingDeviceStore;
let jobs: JobStore;
let monitor: FleetMonitor;

/** What a product publishes about itself (the inventory's leaves). */
function leaves(version: string, connected: 0 | 1): [string, unknown][] {
  return [
    ['ProductId', PRODUCT_ID],
    ['ProductName', PRODUCT_NAME],
    ['FirmwareVersion', encodeFirmwareVersion('vedirect', version)],
    ['Connected', connected],
  ];
}

function publishLeaves(p: Product, version: string, connected: 0 | 1): void {
  for (const [path, value] of leaves(version, connected))
    site.publish(notificationTopic(p.portalId, 'solarcharger', p.instance, path), JSON.stringify({ value }));
}

/** Brings each site online and through its full republish, as a gateway answers the monitor's keepalive. */
async function inventoryAll(): Promise<void> {
  const done = new Set<string>();
  const inventoried = new Promise<void>((resolve) => {
    onLog = (line) => {
      if (line.msg === 'site inventoried') done.add(line.portalId as string);
      if (done.size === PORTALS.length) resolve();
    };
  });
  site.on('message', (topic) => {
    const portalId = PORTALS.find((id) => topic === keepaliveTopic(id));
    if (!portalId) return;
    for (const p of products) if (p.portalId === portalId) publishLeaves(p, 'v1.59', 1);
    site.publish(fullPublishCompletedTopic(portalId), JSON.stringify({ value: 0 }));
  });
  await site.subscribeAsync(PORTALS.map(keepaliveTopic));
  for (const portalId of PORTALS)
    site.publish(serialTopic(portalId), JSON.stringify({ value: portalId }), { retain: true });
  await within(inventoried, 5000, 'every site inventoried');
  onLog = () => undefined;
}

type FleetWait = (done: (r: DeviceRecord) => boolean) => Promise<Map<string, DeviceRecord>>;

/**
 * Follows every product's fleet record. Resolves once each product's retained record has arrived
 * (so none arrives after a newer live one), with a wait for the moment all of them satisfy `done`,
 * which resolves with the records as they were then.
 */
async function followFleet(): Promise<FleetWait> {
  const reader = await broker.connect('tcp', 'svc', `reader-${Math.random().toString(16).slice(2)}`);
  const last = new Map<string, DeviceRecord>();
  let check = () => undefined as void;
  reader.on('message', (_t, payload) => {
    const r = JSON.parse(payload.toString()) as DeviceRecord;
    last.set(r.deviceId, r);
    check();
  });
  const until = (done: (r: DeviceRecord) => boolean, what: string) =>
    within(
      new Promise<Map<string, DeviceRecord>>((resolve) => {
        check = () => {
          if (products.every((p) => last.has(p.deviceId) && done(last.get(p.deviceId)!)))
            resolve(new Map(last));
        };
        check();
      }),
      5000,
      what,
    );
  await reader.subscribeAsync(fleetDeviceTopic('+'), { qos: 1 });
  await until(() => true, "every product's retained record");
  return (done) => until(done, 'every product published with its last values');
}

beforeEach(async () => {
  logs.length = 0;
  broker = await BrokerHarness.start({ svc: SERVICE_ACCOUNT });
  redis = new Redis('redis://127.0.0.1:6379');
  await deleteKeys(redis, `${prefix}:*`);
  store = new CountingDeviceStore(redis, keys);
  jobs = new JobStore(redis, keys);
  await new DeviceStore(redis, keys).upsert(products.map((p) => record(p)));
  const svc = await broker.connect('tcp', 'svc', `monitor-${Math.random().toString(16).slice(2)}`);
  site = await broker.connect('tcp', 'svc', `site-${Math.random().toString(16).slice(2)}`);
  monitor = new FleetMonitor(
    svc,
    store,
    jobs,
    new StatusPublisher(svc, logger),
    logger,
    undefined,
    undefined,
    broker.broker,
  );
  await monitor.start();
  await inventoryAll();
});

afterEach(async () => {
  jest.restoreAllMocks();
  await monitor.stop();
  await broker.close();
  await deleteKeys(redis, `${prefix}:*`);
  await redis.quit();
});

/** Past the window in which product values count as the inventory's, not as changes. */
function afterInventoryWindow(): void {
  const now = Date.now.bind(Date);
  jest.spyOn(Date, 'now').mockImplementation(() => now() + REINVENTORY_MIN_INTERVAL_MS + 1000);
}

test('products rebooting together are applied in a few batches, each ending with its new version, online', async () => {
  const published = await followFleet();
  afterInventoryWindow();
  store.reads = store.writes = 0;
  // Every product leaves the bus and comes back with v1.61, all sent in one go.
  for (const p of products) {
    site.publish(
      notificationTopic(p.portalId, 'solarcharger', p.instance, 'Connected'),
      JSON.stringify({ value: 0 }),
    );
    for (const [path] of leaves('v1.59', 0))
      site.publish(notificationTopic(p.portalId, 'solarcharger', p.instance, path), '');
  }
  for (const p of products) publishLeaves(p, 'v1.61', 1);

  const records = await published((r) => r.version === 'v1.61' && r.online);
  await monitor.stop();
  const stored = await store.getMany(products.map((p) => p.deviceId));
  for (const [i, p] of products.entries()) {
    expect(stored[i]).toMatchObject({ version: 'v1.61', online: true, productId: PRODUCT_ID });
    expect(records.get(p.deviceId)).toEqual(stored[i]);
  }
  // Applied one product at a time (before a511414) this burst took 30 writes and 31 reads.
  expect(store.writes).toBeGreaterThanOrEqual(1);
  expect(store.writes).toBeLessThanOrEqual(6);
  expect(store.reads).toBeLessThanOrEqual(store.writes + 2);
  expect(logs.filter((l) => l.level >= WARN)).toEqual([]);
});

test('a product reporting its target version after its execution timed out gets it recorded, with a warning in the job log', async () => {
  const [late, onTime] = products;
  const lastUpdate: LastUpdate = {
    jobId: 'job-late',
    executionId: 'exec-late',
    state: 'timed_out',
    fromVersion: 'v1.59',
    toVersion: 'v1.61',
    finishedAt: T0,
    errorCode: 'timeout',
  };
  await store.upsert([
    record(late, lastUpdate),
    record(onTime, { ...lastUpdate, executionId: 'exec-ok', state: 'succeeded' }),
  ]);
  const published = await followFleet();
  afterInventoryWindow();
  publishLeaves(late, 'v1.61', 1);
  publishLeaves(onTime, 'v1.61', 1);

  await published((r) =>
    r.deviceId !== late.deviceId && r.deviceId !== onTime.deviceId ? true : r.version === 'v1.61',
  );
  const [lateRec, onTimeRec] = await store.getMany([late.deviceId, onTime.deviceId]);
  expect(lateRec).toMatchObject({
    version: 'v1.61',
    lastUpdate: { state: 'timed_out', lateVersionReportedAt: expect.any(String) },
  });
  expect(onTimeRec?.lastUpdate?.lateVersionReportedAt).toBeUndefined();
  const events = await jobs.events('job-late');
  expect(events).toEqual([
    expect.objectContaining({
      deviceId: late.deviceId,
      level: 'warn',
      message: expect.stringContaining('reports v1.61 after the execution ended timed_out'),
    }),
  ]);
  expect(logs.filter((l) => l.msg === 'late version report after execution ended')).toEqual([
    expect.objectContaining({ jobId: 'job-late', deviceId: late.deviceId, version: 'v1.61' }),
  ]);
});
