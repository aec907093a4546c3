/**
 * The physical limits fleetflash runs on, measured in the same run on the same processes:
 * - BullMQ: how many empty jobs per second one worker completes, with the execution queue's own
 *   options, on the run's Redis (in the bench process, while the service is idle);
 * - the broker: how many 256-byte QoS 0 messages per second it delivers from 8 publishers to one
 *   wildcard subscriber (the shape of device traffic towards a worker).
 */
import { randomBytes } from 'node:crypto';
import { Worker } from 'bullmq';
import { connectMqtt, waitConnected, type MqttClient } from '../../src/mqtt/connect.js';
import { createExecutionQueue, EXECUTION_QUEUE } from '../../src/queue/execution-queue.js';
import type { Cluster } from './bench-cluster.js';

/** Empty jobs per second through a worker of `concurrency` (the service's WORKER_CONCURRENCY). */
export async function bullmqCeiling(c: Cluster, jobs: number, concurrency: number): Promise<number> {
  const prefix = `${c.prefix}ceil`;
  const connection = c.redis.duplicate();
  const queue = createExecutionQueue(connection, prefix);
  try {
    for (let i = 0; i < jobs; i += 1000) {
      const n = Math.min(1000, jobs - i);
      await queue.addBulk(
        Array.from({ length: n }, (_, k) => ({
          name: 'execution',
          data: { jobId: 'j', deviceId: 'd', executionId: `e${i + k}` },
          opts: { jobId: `e${i + k}` },
        })),
      );
    }
    let done = 0;
    let resolveDone!: () => void;
    const finished = new Promise<void>((r) => (resolveDone = r));
    const t0 = performance.now();
    const worker = new Worker(EXECUTION_QUEUE, async () => 'ok', { connection: c.redis.duplicate(), prefix, concurrency, maxStalledCount: 1_000_000 });
    worker.on('completed', () => {
      if (++done === jobs) resolveDone();
    });
    await finished;
    const rate = jobs / ((performance.now() - t0) / 1000);
    await worker.close();
    await worker.disconnect();
    return rate;
  } finally {
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    connection.disconnect();
  }
}

const PUBLISHERS = 8;
const PAYLOAD = Buffer.alloc(256, 'x');
const BATCH = 200;

/** Messages per second the broker delivers to one wildcard subscriber, measured for `seconds`. */
export async function brokerCeiling(c: Cluster, seconds: number): Promise<number> {
  const ns = `ffbench/${c.prefix}/${randomBytes(3).toString('hex')}`;
  const auth = c.mode === 'embedded' ? { username: 'fleetflash-service', password: c.servicePassword } : {};
  // A broker that goes away mid-measurement fails it (after the loops stop), not the bench process.
  let lost: Error | null = null;
  const open = async (id: string): Promise<MqttClient> => {
    const client = connectMqtt(c.mqttUrl, { clientId: `ffbench-${id}-${randomBytes(3).toString('hex')}`, reconnectPeriod: 0, ...auth });
    client.on('error', (err) => (lost ??= err));
    await waitConnected(client);
    return client;
  };
  const sub = await open('sub');
  const pubs = await Promise.all(Array.from({ length: PUBLISHERS }, (_, i) => open(`pub${i}`)));
  let received = 0;
  sub.on('message', () => received++);
  await sub.subscribeAsync(`${ns}/+`, { qos: 0 });
  let running = true;
  const loops = pubs.map(async (p, i) => {
    const topic = `${ns}/${i}`;
    while (running && p.connected) {
      await new Promise<void>((resolve) => {
        for (let k = 0; k < BATCH - 1; k++) p.publish(topic, PAYLOAD, { qos: 0 });
        p.publish(topic, PAYLOAD, { qos: 0 }, () => resolve());
      });
      // Let the subscriber's socket be read too: the bench process hosts both ends.
      await new Promise((r) => setImmediate(r));
    }
  });
  await new Promise((r) => setTimeout(r, 1000)); // warm-up, not counted
  const r0 = received;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const rate = (received - r0) / ((performance.now() - t0) / 1000);
  running = false;
  await Promise.all(loops);
  await Promise.all([sub, ...pubs].map((client) => client.endAsync(true)));
  if (lost) throw new Error(`broker ceiling: a connection failed mid-measurement: ${(lost as Error).message}`);
  return rate;
}
