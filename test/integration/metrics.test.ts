/**
 * Observability end to end: `/metrics` on the API port and on the `METRICS_PORT` listener, scraped
 * before, during and after a real update over simulated sites; the figures must move. Also the
 * operator-only, read-only queue dashboard at `/admin/queues`.
 */
import type { Readable } from 'node:stream';
import type { ExecutionRecord, JobRecord } from '../../src/protocol/index.js';
import { metric, parsePromText, type Sample } from '../helpers/prom-text.js';
import { startHarness, waitFor, type Harness } from '../helpers/service-harness.js';
import type { Fleet } from '../../devices-sim/index.js';

let h: Harness;
let fleet: Fleet;

beforeAll(async () => {
  h = await startHarness({ env: { METRICS_PORT: '0' }, redisPingIntervalMs: 100 });
  // Slow enough (about 2.5 s per solar charger) to scrape in the middle of the job.
  fleet = await h.addFleet({ sites: 3, salt: 'metrics', timeScale: 30, mix: { vebus: 0, solarcharger: 1, battery: 0 } });
}, 60_000);

afterAll(async () => {
  await h?.close();
});

/** Retained messages in the embedded broker's store, as a subscriber to `#` would get them. */
async function retainedInBroker(): Promise<number> {
  const { persistence } = h.service.broker!.aedes as unknown as { persistence: { createRetainedStream(pattern: string): Readable } };
  return (await persistence.createRetainedStream('#').toArray()).length;
}

async function scrape(token = h.viewerToken): Promise<Sample[]> {
  const res = await h.api('/metrics', { token });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  return parsePromText(await res.text());
}

test('/metrics moves while a job runs: executions, phases, queue, MQTT, status latency, Redis', async () => {
  const solar = fleet.devices().filter((d) => d.service === 'solarcharger');
  expect(solar).toHaveLength(3);
  const before = await scrape();
  expect(metric(before, 'fleetflash_mqtt_connections', { kind: 'site' })).toBe(3);
  expect(metric(before, 'fleetflash_mqtt_connections', { kind: 'service' })).toBe(1);
  expect(metric(before, 'fleetflash_service_mqtt_connected')).toBe(1);
  expect(metric(before, 'fleetflash_redis_up')).toBe(1);
  expect(metric(before, 'fleetflash_executions_total')).toBe(0);
  expect(metric(before, 'fleetflash_process_resident_memory_bytes')).toBeGreaterThan(0);

  const image = h.image(solar[0].productId);
  const res = await h.api('/api/jobs', { method: 'POST', json: { firmwareId: image.id, devices: solar.map((d) => d.deviceId) } });
  expect(res.status).toBe(202);
  const { job } = (await res.json()) as { job: JobRecord };

  // During: executions in progress, held by the worker, taken off the queue.
  const during = await waitFor(async () => {
    const s = await scrape();
    // A worker counts an execution as active a moment before its first save records in_progress: wait for both.
    return metric(s, 'fleetflash_worker_active_executions') > 0 &&
      metric(s, 'fleetflash_queue_jobs', { state: 'active' }) > 0 &&
      metric(s, 'fleetflash_executions_total', { state: 'in_progress' }) > 0
      ? s
      : null;
  }, 20_000, 'executions in flight');
  expect(metric(during, 'fleetflash_executions_total', { state: 'in_progress' })).toBeGreaterThan(0);
  expect(metric(during, 'fleetflash_executions_total', { state: 'succeeded' })).toBeLessThan(3);

  const done = await waitFor(async () => {
    const r = (await (await h.api(`/api/jobs/${job.id}`)).json()) as { job: JobRecord; executions: ExecutionRecord[] };
    return r.job.state === 'completed' ? r : null;
  }, 30_000, 'the job to complete');
  expect(done.job.counts.succeeded).toBe(3);

  // The job is complete once the last terminal record is saved; the worker lets go of that
  // execution a moment later (its final publishes acknowledged, BullMQ told): wait for that too.
  const after = await waitFor(async () => {
    const s = await scrape();
    return metric(s, 'fleetflash_worker_active_executions') === 0 ? s : null;
  }, 10_000, 'the worker to let go of the executions');
  expect(metric(after, 'fleetflash_executions_total', { state: 'succeeded', error_code: 'none' })).toBe(3);
  expect(metric(after, 'fleetflash_executions_total', { state: 'in_progress' })).toBe(3);
  expect(metric(after, 'fleetflash_worker_active_executions')).toBe(0);
  // Every phase ended once per device, and its duration was observed.
  for (const phase of ['preflight', 'downloading', 'installing', 'rebooting']) {
    expect(metric(after, 'fleetflash_execution_phase_duration_seconds_count', { phase, outcome: 'completed' })).toBe(3);
  }
  expect(metric(after, 'fleetflash_execution_phase_duration_seconds_sum', { phase: 'installing' })).toBeGreaterThan(3 * 1.5);
  expect(metric(after, 'fleetflash_execution_duration_seconds_count', { state: 'succeeded' })).toBe(3);
  // Status publishes at QoS 1 were acknowledged and timed: every log line, and each execution's
  // terminal record (its live records go at QoS 0); the broker counted messages both ways.
  expect(metric(after, 'fleetflash_status_publish_seconds_count', { topic: 'event' })).toBeGreaterThan(
    metric(before, 'fleetflash_status_publish_seconds_count', { topic: 'event' }) + 3 * 5,
  );
  expect(metric(after, 'fleetflash_status_publish_seconds_count', { topic: 'execution' })).toBe(
    metric(before, 'fleetflash_status_publish_seconds_count', { topic: 'execution' }) + 3,
  );
  for (const direction of ['in', 'out']) {
    expect(metric(after, 'fleetflash_mqtt_messages_total', { direction })).toBeGreaterThan(metric(before, 'fleetflash_mqtt_messages_total', { direction }));
    expect(metric(after, 'fleetflash_service_mqtt_messages_total', { direction })).toBeGreaterThan(
      metric(before, 'fleetflash_service_mqtt_messages_total', { direction }),
    );
  }
  expect(metric(after, 'fleetflash_queue_jobs', { state: 'completed' })).toBeGreaterThanOrEqual(3);
  expect(metric(after, 'fleetflash_queue_oldest_waiting_age_seconds')).toBe(0);
  expect(metric(after, 'fleetflash_redis_ping_seconds_count')).toBeGreaterThan(metric(before, 'fleetflash_redis_ping_seconds_count'));
  expect(metric(after, 'fleetflash_mqtt_connects_total', { outcome: 'accepted', reason: 'site' })).toBeGreaterThanOrEqual(3);
  // What the broker's retained store holds: at least 3 Serials and 6 device records before, and then
  // also the job's summary and its three execution records (and the restore's marker, if it came later).
  expect(metric(before, 'fleetflash_mqtt_retained_messages')).toBeGreaterThanOrEqual(3 + 6);
  expect(metric(after, 'fleetflash_mqtt_retained_messages')).toBe(await retainedInBroker());
  expect(metric(after, 'fleetflash_mqtt_retained_messages') - metric(before, 'fleetflash_mqtt_retained_messages')).toBeGreaterThanOrEqual(4);
}, 60_000);

test('/metrics on the API port needs a token; the METRICS_PORT listener does not and also answers health probes', async () => {
  expect((await fetch(`${h.base}/metrics`)).status).toBe(401);
  const port = h.service.metricsPort;
  expect(port).not.toBeNull();
  const plain = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(plain.status).toBe(200);
  expect(metric(parsePromText(await plain.text()), 'fleetflash_redis_up')).toBe(1);
  expect(await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()).toEqual({ ok: true });
  const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
  expect(ready.status).toBe(200);
  expect(await ready.json()).toEqual({ ok: true, checks: { redis: true, mqtt: true, worker: true } });
  expect((await fetch(`http://127.0.0.1:${port}/nope`)).status).toBe(404);
});

describe('/admin/queues', () => {
  const basic = (token: string) => `Basic ${Buffer.from(`ops:${token}`).toString('base64')}`;

  test('asks a browser for credentials, refuses viewers, serves operators (bearer or Basic)', async () => {
    const anonymous = await fetch(`${h.base}/admin/queues`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm="fleetflash queues"/);
    expect((await fetch(`${h.base}/admin/queues`, { headers: { authorization: basic(h.viewerToken) } })).status).toBe(403);
    const page = await fetch(`${h.base}/admin/queues`, { headers: { authorization: basic(h.operatorToken) } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
    const api = await fetch(`${h.base}/admin/queues/api/queues?activeQueue=executions&page=1&jobsPerPage=10`, {
      headers: { authorization: `Bearer ${h.operatorToken}` },
    });
    expect(api.status).toBe(200);
    const body = (await api.json()) as { queues: { name: string; readOnlyMode: boolean }[] };
    expect(body.queues.map((q) => [q.name, q.readOnlyMode])).toEqual([['executions', true]]);
  });

  test('is read-only: anything but GET is refused before bull-board sees it', async () => {
    const res = await fetch(`${h.base}/admin/queues/api/queues/executions/clean/completed`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${h.operatorToken}` },
    });
    expect(res.status).toBe(405);
  });
});
