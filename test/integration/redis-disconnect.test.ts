/**
 * A Redis client disconnected while it waits to reconnect must end (src/store/redis-disconnect.ts):
 * ioredis alone leaves it "reconnecting" forever, and BullMQ's Worker.close() and the broker cluster's
 * emitter close() wait for that end. Real clients, a real BullMQ Worker and a real redis-server that
 * dies; each client retries only after a minute, so it is certainly between attempts when closed.
 * And the broker persistence's commands sent without waiting fail quietly when it disconnects (Jest
 * fails a test on an unhandled rejection).
 */
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { pino } from 'pino';
import { freePort, volatileRedisServer, type ManagedProcess } from '../../scripts/lib/processes.js';
import { createClusterEmitter, persistenceConnection } from '../../src/service/broker-cluster.js';
import { endOnDisconnect } from '../../src/store/redis-disconnect.js';
import { ReplicaWatch, type Reconnectable } from '../../src/store/replica-watch.js';
import { within } from '../helpers/within.js';

const logger = pino({ level: 'silent' });
/** A retry a minute away: after the server dies, the clients wait in "reconnecting". */
const SLOW_RETRY: RedisOptions = { retryStrategy: () => 60_000, maxRetriesPerRequest: null };

let tmp: string;
let server: ManagedProcess | null = null;
let port: number;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'ff-disconnect-'));
});
beforeEach(async () => {
  port = await freePort();
  server = volatileRedisServer(port, tmp);
  await server.start();
});
afterEach(async () => {
  await server?.stop();
  server = null;
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Resolves once every client waits to reconnect. */
async function allWaiting(clients: Redis[]): Promise<void> {
  await Promise.all(clients.map((c) => (c.status === 'reconnecting' ? undefined : once(c, 'reconnecting'))));
}

function client(): Redis {
  const r = new Redis({ port, host: '127.0.0.1', ...SLOW_RETRY });
  r.on('error', () => undefined);
  return r;
}

test('a client and its duplicate disconnected while waiting to reconnect end, their queued commands rejected', async () => {
  const original = endOnDisconnect(client());
  const duplicate = original.duplicate();
  duplicate.on('error', () => undefined);
  await Promise.all([once(original, 'ready'), once(duplicate, 'ready')]);
  await server!.kill('SIGKILL');
  await allWaiting([original, duplicate]);
  const queued = original.get('k');

  for (const c of [original, duplicate]) {
    const ended = once(c, 'end');
    c.disconnect();
    await within(ended, 2000, `'end' of a disconnected ${c === original ? 'client' : 'duplicate'}`);
    expect(c.status).toBe('end');
  }
  await expect(queued).rejects.toThrow('Connection is closed.');
});

test('quit() of a client waiting to reconnect resolves and ends it', async () => {
  const c = endOnDisconnect(client());
  await once(c, 'ready');
  await server!.kill('SIGKILL');
  await allWaiting([c]);
  const ended = once(c, 'end');
  await expect(c.quit()).resolves.toBe('OK');
  await within(ended, 2000, "'end' after quit()");
});

test("BullMQ's Worker.close() completes when Redis went away (its blocking connection was waiting to reconnect)", async () => {
  const connection = endOnDisconnect(client());
  // BullMQ makes its blocking connection with duplicate(): keep them to know when they wait.
  const made: Redis[] = [];
  const duplicate = connection.duplicate.bind(connection);
  connection.duplicate = (...args: Parameters<Redis['duplicate']>) => {
    const d = duplicate(...args);
    made.push(d);
    return d;
  };
  const worker = new Worker('ff-disconnect-test', async () => undefined, {
    connection,
    prefix: `ff-disc-${port}`,
  });
  worker.on('error', () => undefined);
  // 'drained': the first fetch found the queue empty and the loop goes to its blocking wait. Killed
  // earlier, that fetch stays queued on the shared connection for the reconnection and close() waits
  // for Redis to come back (BullMQ awaits its main loop): not the case under test.
  const drained = once(worker, 'drained');
  await worker.waitUntilReady();
  expect(made.length).toBeGreaterThan(0);
  await Promise.all([drained, ...made.map((d) => (d.status === 'ready' ? undefined : once(d, 'ready')))]);
  await server!.kill('SIGKILL');
  await allWaiting([connection, ...made]);
  await within(worker.close(), 5000, 'Worker.close()');
  expect(made.every((d) => d.status === 'end')).toBe(true);
  connection.disconnect();
});

test("the broker cluster's emitter closes when Redis went away (both its connections waiting to reconnect)", async () => {
  const followed: Reconnectable[] = [];
  const replicas = new (class extends ReplicaWatch {
    override follow(conn: Reconnectable): () => void {
      followed.push(conn);
      return super.follow(conn);
    }
  })(logger);
  const { close } = createClusterEmitter(
    { port, host: '127.0.0.1', ...SLOW_RETRY },
    `ff-disc-${port}:`,
    logger,
    replicas,
  );
  const conns = followed as unknown as Redis[];
  expect(conns).toHaveLength(2);
  await Promise.all(conns.map((c) => (c.status === 'ready' ? undefined : once(c, 'ready'))));
  await server!.kill('SIGKILL');
  await allWaiting(conns);
  await within(close(), 5000, "the emitter's close()");
  expect(conns.map((c) => c.status)).toEqual(['end', 'end']);
});

test("the broker persistence's unawaited commands fail quietly when it disconnects with them queued; awaited ones still fail", async () => {
  const conn = persistenceConnection(
    { port, host: '127.0.0.1', ...SLOW_RETRY },
    `ff-disc-${port}:`,
    logger,
  ) as unknown as Redis;
  await once(conn, 'ready');
  await server!.kill('SIGKILL');
  await allWaiting([conn]);
  // As aedes-persistence-redis' putWill and delWill send them: nobody waits for the reply.
  void conn.lrem('wills', 0, 'w');
  void conn.rpush('wills', 'w');
  const awaited = conn.del('will');
  const ended = once(conn, 'end');
  conn.disconnect();
  await ended;
  await expect(awaited).rejects.toThrow('Connection is closed.');
});
