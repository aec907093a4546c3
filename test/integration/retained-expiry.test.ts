/**
 * A finished job's retained records leave the broker once it has been finished for
 * `RETAINED_JOB_TTL_MS` (src/status/retained-expiry.ts), with the embedded broker in memory and with
 * its retained state in Redis (`BROKER_CLUSTER=redis`). A job that has not finished keeps its
 * records however old it is, device records stay, and the API still serves the finished job.
 */
import type { Readable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import {
  jobDeviceTopic,
  jobStatusTopic,
  type ExecutionRecord,
  type JobRecord,
} from '../../src/protocol/index.js';
import { createKeys } from '../../src/store/keys.js';
import { RetainedJobExpiry } from '../../src/status/retained-expiry.js';
import { RETAINED_MARKER_TOPIC } from '../../src/status/retained-restorer.js';
import { StatusPublisher } from '../../src/status/status-publisher.js';
import { embeddedBrokerSink } from '../../src/status/status-sink.js';
import { BrokerHarness } from '../helpers/broker-harness.js';
import { deleteKeys } from '../helpers/redis-keys.js';
import { startHarness, waitFor, type Harness } from '../helpers/service-harness.js';

let h: Harness | undefined;

afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** The topics the broker holds a retained message for under `filter` (its own store, as a subscriber would get them). */
async function retainedTopics(harness: Harness, filter: string): Promise<string[]> {
  return retainedIn(harness.service.broker!.aedes, filter);
}

async function retainedIn(aedes: unknown, filter: string): Promise<string[]> {
  const { persistence } = aedes as {
    persistence: { createRetainedStream(pattern: string): Readable };
  };
  const packets = (await persistence.createRetainedStream(filter).toArray()) as { topic: string }[];
  return packets.map((p) => p.topic).sort();
}

type Aedes = Parameters<typeof embeddedBrokerSink>[0];

/** Publishes a retained message as the broker itself (an empty payload removes the topic's). */
function publishRetained(aedes: Aedes, topic: string, payload: string): Promise<void> {
  return new Promise<void>((resolve, reject) =>
    embeddedBrokerSink(aedes).publish(topic, payload, { qos: 1, retain: true }, (err) =>
      err ? reject(err) : resolve(),
    ),
  );
}

/** Removes every retained message under `filter` as the broker itself (what a restart does to a store in memory). */
async function clearRetained(aedes: Aedes, filter: string): Promise<void> {
  for (const topic of await retainedIn(aedes, filter)) await publishRetained(aedes, topic, '');
}

async function launch(harness: Harness, body: Record<string, unknown>): Promise<JobRecord> {
  const res = await harness.api('/api/jobs', { method: 'POST', json: body });
  expect(res.status).toBe(202);
  return ((await res.json()) as { job: JobRecord }).job;
}

async function readJob(
  harness: Harness,
  jobId: string,
): Promise<{ job: JobRecord; executions: ExecutionRecord[] }> {
  return (await (await harness.api(`/api/jobs/${jobId}`)).json()) as {
    job: JobRecord;
    executions: ExecutionRecord[];
  };
}

it.each(['none', 'redis'])(
  'clears a finished job after the TTL and nothing else (BROKER_CLUSTER=%s)',
  async (cluster) => {
    h = await startHarness({
      env: { RETAINED_JOB_TTL_MS: '3000', BROKER_CLUSTER: cluster },
      captureLogs: true,
    });
    const harness = h;
    const fleet = await harness.addFleet({
      sites: 2,
      salt: `retained-expiry-${cluster}`,
      mix: { vebus: 0, solarcharger: 1, battery: 0 },
    });
    const [held, updated] = fleet.devices().filter((d) => d.service === 'solarcharger');
    const firmwareId = harness.image(updated.productId).id;
    // Scheduled an hour ahead: it stays queued, older than the TTL by the end, and must keep its records.
    const waiting = await launch(harness, {
      firmwareId,
      devices: [held.deviceId],
      schedule: { startAt: new Date(Date.now() + 3_600_000).toISOString() },
    });
    const done = await launch(harness, { firmwareId, devices: [updated.deviceId] });
    const finished = await waitFor(
      async () => {
        const r = await readJob(harness, done.id);
        return r.job.state === 'completed' ? r : null;
      },
      30_000,
      'the job to finish',
    );
    expect(finished.executions.map((e) => e.state)).toEqual(['succeeded']);

    const doneTopics = [
      `fleetflash/jobs/${done.id}/devices/${updated.deviceId}`,
      `fleetflash/jobs/${done.id}/status`,
    ];
    const waitingTopics = [
      `fleetflash/jobs/${waiting.id}/devices/${held.deviceId}`,
      `fleetflash/jobs/${waiting.id}/status`,
    ];
    // Finished just now (well within the TTL of 3 s): retained like any job's records.
    expect(await retainedTopics(harness, `fleetflash/jobs/${done.id}/#`)).toEqual(doneTopics);

    // The sweep logs once its pass is over (the topics are gone a moment before).
    const cleared = await waitFor(
      () => harness.logs.find((l) => l.msg === 'retained records of finished jobs cleared from the broker'),
      10_000,
      'the sweep that clears the finished job',
    );
    expect(cleared).toMatchObject({ jobs: 1, executions: 1 });
    expect(await retainedTopics(harness, `fleetflash/jobs/${done.id}/#`)).toEqual([]);
    // It finished at least the TTL before it was cleared.
    const finishedAt = Date.parse(finished.job.finishedAt!);
    expect(Number(cleared!.time) - finishedAt).toBeGreaterThanOrEqual(3000);

    expect(await retainedTopics(harness, `fleetflash/jobs/${waiting.id}/#`)).toEqual(waitingTopics);
    expect(await retainedTopics(harness, `fleetflash/devices/${updated.deviceId}`)).toEqual([
      `fleetflash/devices/${updated.deviceId}`,
    ]);
    const served = await readJob(harness, done.id);
    expect(served.job.state).toBe('completed');
    expect(served.executions.map((e) => e.state)).toEqual(['succeeded']);

    // The broker loses its retained state (the marker and the waiting job's records gone, as in a
    // restart) and the api's client reconnects: the restore puts back the job that waits, not the
    // one cleared.
    const aedes = harness.service.broker!.aedes;
    await clearRetained(aedes, RETAINED_MARKER_TOPIC);
    await clearRetained(aedes, `fleetflash/jobs/${waiting.id}/#`);
    expect(await retainedTopics(harness, `fleetflash/jobs/${waiting.id}/#`)).toEqual([]);
    const restores = () => harness.logs.filter((l) => l.msg === 'retained state restored').length;
    const before = restores();
    const clients = (aedes as unknown as { clients: Record<string, { close(): void }> }).clients;
    for (const [id, client] of Object.entries(clients)) if (id.startsWith('svc-')) client.close();
    await waitFor(() => restores() > before, 10_000, 'the restore after the reconnect');
    expect(await retainedTopics(harness, `fleetflash/jobs/${waiting.id}/#`)).toEqual(waitingTopics);
    expect(await retainedTopics(harness, `fleetflash/jobs/${done.id}/#`)).toEqual([]);
  },
);

describe('the sweep', () => {
  let redis: Redis;
  const prefix = `test-expiry-${process.pid}`;
  const keys = createKeys(prefix);
  const TTL = 1000;
  const T = Date.parse('2026-12-05T12:00:00.000Z');
  let broker: BrokerHarness;
  let now = T;

  beforeAll(async () => {
    redis = new Redis('redis://127.0.0.1:6379');
    broker = await BrokerHarness.start({});
  });

  afterAll(async () => {
    await broker.close();
    await deleteKeys(redis, `${prefix}:*`);
    redis.disconnect();
  });

  /** A stored job created at `created` (finished at `finished`, or running) with one execution, its records retained. */
  async function job(id: string, created: number, finished: number | null): Promise<void> {
    const fields: Record<string, string> = { spec: '{}', state: finished === null ? 'running' : 'completed' };
    if (finished !== null) fields.finishedAt = new Date(finished).toISOString();
    await redis.hset(keys.job(id), fields);
    await redis.hset(keys.jobExecutions(id), `${id}dev`, '{}');
    await redis.zadd(keys.jobs(), created, id);
    for (const topic of [jobDeviceTopic(id, `${id}dev`), jobStatusTopic(id)]) {
      await publishRetained(broker.broker.aedes, topic, '{"seq":1}');
    }
  }

  const held = async () =>
    (await retainedIn(broker.broker.aedes, 'fleetflash/jobs/#')).map((t) => t.split('/')[2]);

  it('clears what finished before the cutoff, keeps what runs, and moves its cursor past what is done', async () => {
    const sink = embeddedBrokerSink(broker.broker.aedes);
    const publisher = new StatusPublisher(sink, pino({ level: 'silent' }));
    const expiry = new RetainedJobExpiry({
      redis,
      keys,
      publisher,
      logger: pino({ level: 'silent' }),
      ttlMs: TTL,
      now: () => now,
    });
    await job('ja', T - 10_000, T - 5000);
    await job('jb', T - 9000, null);
    await job('jc', T - 8000, T - 4000);
    await job('jd', T - 500, T - 400);

    expect(await expiry.claimAndSweep()).toBe(2);
    expect(new Set(await held())).toEqual(new Set(['jb', 'jd']));
    // ja is done; jb still runs, so the cursor stays at ja and jc is looked at (and skipped) again.
    expect(await redis.get(keys.retainedExpiryCursor())).toBe(String(T - 10_000));
    expect(await redis.hget(keys.job('jc'), 'topicsClearedAt')).toBe(new Date(T).toISOString());
    // Another process within the interval: the claim is taken.
    expect(await expiry.claimAndSweep()).toBe(0);

    await redis.hset(keys.job('jb'), 'state', 'completed', 'finishedAt', new Date(T - 2000).toISOString());
    now = T + 100;
    expect(await expiry.sweep()).toBe(1);
    expect(await held()).toEqual(['jd', 'jd']);
    expect(await redis.get(keys.retainedExpiryCursor())).toBe(String(T - 8000));

    now = T + 600;
    expect(await expiry.sweep()).toBe(1);
    expect(await held()).toEqual([]);
    expect(await redis.get(keys.retainedExpiryCursor())).toBe(String(T - 500));
    expect(await expiry.sweep()).toBe(0);
  });
});
