/**
 * Private redis-server processes for the failover tests: a master and its replica, started on free
 * ports in `dir` and in sync before the test goes on; and one-off queries to either.
 */
import { Redis } from 'ioredis';
import { freePort, redisServer, volatileRedisServer, type ManagedProcess } from '../../scripts/lib/processes.js';
import { waitFor } from './service-harness.js';

export interface RedisPair {
  master: ManagedProcess;
  replica: ManagedProcess;
  ports: { master: number; replica: number };
}

/** Runs `fn` on a connection of its own to the Redis on `port` (named `name`, if given), then closes it. */
export async function queryRedis<T>(port: number, fn: (r: Redis) => Promise<T>, name?: string): Promise<T> {
  const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, ...(name ? { connectionName: name } : {}) });
  try {
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

/** A master (with AOF when `durableMaster`, else nothing on disk) and a replica of it, in sync. */
export async function startRedisPair(dir: string, options: { durableMaster?: boolean } = {}): Promise<RedisPair> {
  const ports = { master: await freePort(), replica: await freePort() };
  const master = options.durableMaster ? redisServer(ports.master, dir, null) : volatileRedisServer(ports.master, dir);
  await master.start();
  const replica = volatileRedisServer(ports.replica, dir, ['--replicaof', '127.0.0.1', String(ports.master)]);
  await replica.start();
  await waitFor(
    () => queryRedis(ports.replica, async (r) => (await r.info('replication')).includes('master_link_status:up')),
    10_000,
    'the replica in sync',
  );
  return { master, replica, ports };
}
