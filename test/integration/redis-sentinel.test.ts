/**
 * Redis through Sentinel (`REDIS_SENTINELS`, `REDIS_SENTINEL_NAME`): a private master, its replica and
 * one sentinel, all real `redis-server` processes. The service is given an unreachable `REDIS_URL` host,
 * so everything it does (stores, queue, and the broker cluster: `BROKER_CLUSTER=redis`) goes to the master
 * the sentinel names; when the master is killed, the sentinel promotes the replica and the service
 * carries on with it, no restart, its connection errors logged rather than printed as unhandled.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { jest } from '@jest/globals';
import type { JobRecord } from '../../src/protocol/index.js';
import { createKeys } from '../../src/store/keys.js';
import { freePort, ManagedProcess, redisAnswers } from '../../scripts/lib/processes.js';
import { queryRedis, startRedisPair } from '../helpers/redis-pair.js';
import { startHarness, waitFor, type Harness } from '../helpers/service-harness.js';

const GROUP = 'ff-test-master';
let tmp: string;
let master: ManagedProcess;
let replica: ManagedProcess;
let sentinel: ManagedProcess;
let ports: { master: number; replica: number; sentinel: number };
let h: Harness | undefined;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'ff-sentinel-'));
  const pair = await startRedisPair(tmp, { durableMaster: true });
  ({ master, replica } = pair);
  ports = { ...pair.ports, sentinel: await freePort() };
  const conf = path.join(tmp, 'sentinel.conf');
  await writeFile(
    conf,
    [
      `port ${ports.sentinel}`,
      'bind 127.0.0.1',
      'protected-mode no',
      `dir ${tmp}`,
      `sentinel monitor ${GROUP} 127.0.0.1 ${ports.master} 1`,
      `sentinel down-after-milliseconds ${GROUP} 1000`,
      `sentinel failover-timeout ${GROUP} 10000`,
      '',
    ].join('\n'),
  );
  sentinel = new ManagedProcess(
    'sentinel',
    'redis-server',
    [conf, '--sentinel'],
    process.env,
    null,
    redisAnswers(ports.sentinel),
  );
  await sentinel.start();
  // The sentinel learns of the replica from the master's INFO.
  await waitFor(
    () =>
      queryRedis(
        ports.sentinel,
        async (r) => ((await r.call('SENTINEL', 'replicas', GROUP)) as unknown[]).length === 1,
      ),
    15_000,
    'the sentinel to see the replica',
  );
}, 60_000);

afterAll(async () => {
  await h?.close();
  for (const p of [sentinel, replica, master]) await p?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

async function runJob(harness: Harness, deviceIds: string[], firmwareId: string): Promise<JobRecord> {
  const res = await harness.api('/api/jobs', {
    method: 'POST',
    json: { firmwareId, devices: deviceIds, allowSameVersion: true },
  });
  expect(res.status).toBe(202);
  const { job } = (await res.json()) as { job: JobRecord };
  return waitFor(
    async () => {
      const r = (await (await harness.api(`/api/jobs/${job.id}`)).json()) as { job: JobRecord };
      return r.job.finishedAt ? r.job : null;
    },
    30_000,
    `job ${job.id} to end`,
  );
}

test('the service reaches Redis through the sentinel and follows a failover', async () => {
  h = await startHarness({
    env: {
      REDIS_URL: 'redis://127.0.0.1:1',
      REDIS_SENTINELS: `127.0.0.1:${ports.sentinel}`,
      REDIS_SENTINEL_NAME: GROUP,
      BROKER_CLUSTER: 'redis',
    },
  });
  const fleet = await h.addFleet({
    sites: 2,
    salt: 'sentinel',
    mix: { vebus: 0, solarcharger: 1, battery: 0 },
  });
  const solar = fleet.devices().filter((x) => x.service === 'solarcharger');
  const firmwareId = h.image(solar[0].productId).id;
  const first = await runJob(
    h,
    solar.map((x) => x.deviceId),
    firmwareId,
  );
  expect(first.counts.succeeded).toBe(solar.length);
  // Everything is on the master the sentinel named (nothing could reach port 1).
  const keys = createKeys(h.service.config.queuePrefix);
  expect(await queryRedis(ports.master, (r) => r.exists(keys.job(first.id)))).toBe(1);

  // Libraries print connection errors nobody listens to ("Unhandled error event") to stderr.
  const printed = jest.spyOn(console, 'error');
  await master.kill('SIGKILL');
  await waitFor(
    () =>
      queryRedis(
        ports.sentinel,
        async (r) =>
          ((await r.call('SENTINEL', 'get-master-addr-by-name', GROUP)) as string[])[1] ===
          String(ports.replica),
      ),
    30_000,
    'the sentinel to promote the replica',
  );
  // The first job survived on the replica, and a new one runs on it.
  expect(
    ((await (await h.api(`/api/jobs/${first.id}`)).json()) as { job: JobRecord }).job.counts.succeeded,
  ).toBe(solar.length);
  const second = await runJob(
    h,
    solar.map((x) => x.deviceId),
    firmwareId,
  );
  expect(second.counts.succeeded).toBe(solar.length);
  expect(await queryRedis(ports.replica, (r) => r.exists(keys.job(second.id)))).toBe(1);
  await waitFor(async () => (await fetch(`${h!.base}/readyz`)).ok, 10_000, 'readiness after the failover');
  expect(printed.mock.calls.map((c) => String(c[0])).filter((m) => /unhandled/i.test(m))).toEqual([]);
  printed.mockRestore();
}, 120_000);
