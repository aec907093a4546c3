/**
 * A failover behind one Redis endpoint (`REDIS_URL` names a DNS name or virtual IP that moves to the
 * new master, as managed Redis services do): connections made before it stay open to the old master,
 * which, demoted to a replica, refuses every write with READONLY. Two real redis-servers behind a TCP
 * forwarder standing for the endpoint, and `BROKER_CLUSTER=redis` so that the broker's persistence and
 * pub/sub are on it too. After the switch a new job runs to its end, and every connection of the
 * service leaves the old node (the pub/sub ones of the broker cluster and the rollout, which never
 * write, included).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createKeys } from '../../src/store/keys.js';
import { jobFinished, launchJob, solarChargers } from '../helpers/rollout-helpers.js';
import { queryRedis, startRedisPair, type RedisPair } from '../helpers/redis-pair.js';
import { startHarness, waitFor, type Harness } from '../helpers/service-harness.js';
import { startTcpForwarder, type TcpForwarder } from '../helpers/tcp-forwarder.js';

const PROBE = 'failover-test-probe';
let tmp: string;
let redis: RedisPair;
let endpoint: TcpForwarder;
let h: Harness | undefined;

/** Clients of the Redis on `port` other than replication links and this test's probe: the service's. */
function serviceClients(port: number): Promise<string[]> {
  return queryRedis(
    port,
    async (r) =>
      String(await r.client('LIST'))
        .split('\n')
        .filter((line) => line && !line.includes(`name=${PROBE}`) && !/ flags=[^ ]*[MS]/.test(line)),
    PROBE,
  );
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'ff-endpoint-'));
  redis = await startRedisPair(tmp);
  endpoint = await startTcpForwarder(redis.ports.master);
}, 30_000);

afterAll(async () => {
  await h?.close();
  await endpoint?.close();
  for (const p of [redis?.replica, redis?.master]) await p?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test('the endpoint moves to a new master and the old one becomes its replica: the service follows', async () => {
  h = await startHarness({
    env: { REDIS_URL: `redis://127.0.0.1:${endpoint.port}`, BROKER_CLUSTER: 'redis' },
    captureLogs: true,
  });
  const fleet = await h.addFleet({ sites: 2, salt: 'endpoint', mix: { vebus: 0, solarcharger: 1, battery: 0 } });
  const devices = solarChargers(fleet);
  const firmwareId = h.image(fleet.devices().find((d) => d.service === 'solarcharger')!.productId).id;
  const first = await launchJob(h, { firmwareId, devices, allowSameVersion: true });
  expect((await jobFinished(h, first.id)).job.counts.succeeded).toBe(devices.length);
  const { master: oldPort, replica: nextPort } = redis.ports;
  expect((await serviceClients(oldPort)).length).toBeGreaterThan(0);

  // The failover: every write reached the replica, it is promoted, the endpoint moves to it, and
  // the old master becomes its replica, keeping the service's connections open.
  expect(await queryRedis(oldPort, (r) => r.call('WAIT', '1', '5000'))).toBe(1);
  await queryRedis(nextPort, (r) => r.call('REPLICAOF', 'NO', 'ONE'));
  endpoint.target = nextPort;
  await queryRedis(oldPort, (r) => r.call('REPLICAOF', '127.0.0.1', String(nextPort)));

  const second = await launchJob(h, { firmwareId, devices, allowSameVersion: true });
  expect((await jobFinished(h, second.id)).job.counts.succeeded).toBe(devices.length);
  const keys = createKeys(h.service.config.queuePrefix);
  expect(await queryRedis(nextPort, (r) => r.exists(keys.job(first.id), keys.job(second.id)))).toBe(2);
  await waitFor(async () => (await serviceClients(oldPort)).length === 0, 15_000, 'every connection to leave the old master').catch(
    async (err: Error) => {
      throw new Error(`${err.message}; still there:\n${(await serviceClients(oldPort)).join('\n')}`);
    },
  );
  const messages = h.logs.map((l) => l.msg);
  expect(messages).toContain('redis refused a write as a replica (READONLY); reconnecting to reach the master');
  expect(messages).toContain('redis subscribers reconnecting after a failover');
}, 120_000);
