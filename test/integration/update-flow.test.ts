/**
 * The whole update path, end to end: real Redis, the real embedded broker, BullMQ workers, Express,
 * and simulated GX sites as the devices.
 */
import type { Fleet } from '../../devices-sim/index.js';
import { connectMqtt, waitConnected } from '../../src/mqtt/connect.js';
import { PHASES, type ExecutionRecord, type JobEvent, type JobRecord } from '../../src/protocol/index.js';
import { readJob } from '../helpers/rollout-helpers.js';
import { startHarness, waitFor, type Harness } from '../helpers/service-harness.js';

let h: Harness;
let fleet: Fleet;

beforeAll(async () => {
  h = await startHarness();
  fleet = await h.addFleet({ sites: 6, salt: 'happy' });
});

afterAll(async () => {
  await h?.close();
});

async function launch(firmwareId: string, devices: string[], extra: Record<string, unknown> = {}): Promise<JobRecord> {
  const res = await h.api('/api/jobs', { method: 'POST', json: { firmwareId, devices, ...extra } });
  expect(res.status).toBe(202);
  const body = (await res.json()) as { job: JobRecord };
  expect(body.job.topicPrefix).toBe(`fleetflash/jobs/${body.job.id}`);
  return body.job;
}

async function finished(jobId: string, timeoutMs = 30_000): Promise<{ job: JobRecord; executions: ExecutionRecord[] }> {
  return waitFor(
    async () => {
      const res = await h.api(`/api/jobs/${jobId}`);
      const body = (await res.json()) as { job: JobRecord; executions: ExecutionRecord[] };
      return body.job.state === 'completed' || body.job.state === 'aborted' ? body : null;
    },
    timeoutMs,
    `job ${jobId} to finish`,
  );
}

async function events(jobId: string): Promise<JobEvent[]> {
  const res = await h.api(`/api/jobs/${jobId}/events?after=0`);
  return ((await res.json()) as { events: JobEvent[] }).events;
}

function deviceOf(f: Fleet, service: string, index = 0) {
  const d = f.devices().filter((x) => x.service === service)[index];
  if (!d) throw new Error(`no ${service} #${index} in the fleet`);
  return d;
}

test('the inventory lists every simulated device with product, version and online state', async () => {
  const res = await h.api('/api/devices');
  expect(res.status).toBe(200);
  const { devices } = (await res.json()) as { devices: { deviceId: string; productId: number; version: string; online: boolean }[] };
  const byId = new Map(devices.map((d) => [d.deviceId, d]));
  for (const d of fleet.devices()) {
    expect(byId.get(d.deviceId)).toMatchObject({ productId: d.productId, version: d.version, online: true });
  }
  const kinds = new Set(fleet.devices().map((d) => d.service));
  expect([...kinds].sort()).toEqual(['battery', 'platform', 'solarcharger', 'vebus']);
});

test.each(['platform', 'vebus', 'solarcharger', 'battery'])('updates a %s end to end and confirms the new version', async (service) => {
  const device = deviceOf(fleet, service);
  const image = h.image(device.productId);
  const job = await launch(image.id, [device.deviceId]);
  const { job: done, executions } = await finished(job.id);
  expect(done.state).toBe('completed');
  expect(done.counts.succeeded).toBe(1);
  expect(executions[0]).toMatchObject({ state: 'succeeded', progress: 100, toVersion: image.version, fromVersion: device.version, error: null });
  // Success is what the device says after it came back, not what the flash said.
  expect(fleet.devices().find((d) => d.deviceId === device.deviceId)?.version).toBe(image.version);
  const api = (await (await h.api(`/api/devices/${device.deviceId}`)).json()) as { device: { version: string }; history: { state: string }[] };
  expect(api.device.version).toBe(image.version);
  expect(api.history[0]).toMatchObject({ state: 'succeeded', toVersion: image.version });
  // The log walks the phases in order.
  const phases = (await events(job.id)).map((e) => e.phase).filter((p): p is NonNullable<typeof p> => !!p);
  const firstSeen = PHASES.filter((p) => phases.includes(p));
  expect(firstSeen).toEqual([...PHASES]);
  expect(fleet.truth.maxInstallsPerExecution()).toBe(1);
});

test('a browser over WebSocket sees the current state at once and every change after it, without gaps', async () => {
  const devices = [deviceOf(fleet, 'solarcharger', 1), deviceOf(fleet, 'solarcharger', 2), deviceOf(fleet, 'solarcharger', 3)];
  const image = h.image(devices[0].productId);
  const credsRes = await h.api('/api/mqtt-credentials', { method: 'POST', token: h.viewerToken });
  expect(credsRes.status).toBe(200);
  const creds = (await credsRes.json()) as { url: string; username: string; password: string; clientIdPrefix: string };
  expect(creds.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/mqtt$/);

  const job = await launch(image.id, devices.map((d) => d.deviceId));
  const browser = connectMqtt(creds.url, { username: creds.username, password: creds.password, clientId: `${creds.clientIdPrefix}${job.id}` });
  const records = new Map<string, ExecutionRecord[]>();
  const live: JobEvent[] = [];
  let firstStatus: JobRecord | null = null;
  let lastStatus: JobRecord | null = null;
  browser.on('message', (topic, payload) => {
    const body = JSON.parse(payload.toString()) as unknown;
    if (topic.endsWith('/status')) {
      firstStatus ??= body as JobRecord;
      lastStatus = body as JobRecord;
    } else if (topic.endsWith('/events')) live.push(body as JobEvent);
    else {
      const r = body as ExecutionRecord;
      records.set(r.deviceId, [...(records.get(r.deviceId) ?? []), r]);
    }
  });
  try {
    await waitConnected(browser);
    await browser.subscribeAsync(`fleetflash/jobs/${job.id}/#`, { qos: 1 });
    // Retained state arrives at once on subscribe.
    await waitFor(() => firstStatus && records.size === devices.length, 5000, 'retained state');
    await waitFor(() => lastStatus?.state === 'completed', 30_000, 'job completed on the status topic');
    await waitFor(() => devices.every((d) => records.get(d.deviceId)?.some((r) => r.state === 'succeeded')), 5000, 'final records');
    for (const d of devices) {
      // The reader's rule: keep the record with the highest seq. (A retained record read at subscribe
      // time may arrive after a newer live one; the rule makes that invisible.)
      const kept: ExecutionRecord[] = [];
      for (const r of records.get(d.deviceId)!) if (!kept.length || r.seq > kept.at(-1)!.seq) kept.push(r);
      for (let i = 1; i < kept.length; i++) expect(kept[i].progress).toBeGreaterThanOrEqual(kept[i - 1].progress);
      expect(kept.some((r) => r.progress > 0 && r.progress < 100)).toBe(true);
      expect(kept.at(-1)).toMatchObject({ state: 'succeeded', progress: 100 });
    }
    // Backlog + live log = every line exactly once, contiguous from 1.
    const backlog = await events(job.id);
    const merged = new Map<number, JobEvent>();
    for (const e of [...backlog, ...live]) {
      const prev = merged.get(e.seq);
      if (prev) expect(prev).toEqual(e);
      merged.set(e.seq, e);
    }
    const seqs = [...merged.keys()].sort((a, b) => a - b);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(live.length).toBeGreaterThan(0);
    // A page that loads late still gets the final state at once.
    const late = connectMqtt(creds.url, { username: creds.username, password: creds.password, clientId: `${creds.clientIdPrefix}late_${job.id}` });
    try {
      await waitConnected(late);
      const got = new Promise<JobRecord>((resolve) => late.on('message', (_t, p) => resolve(JSON.parse(p.toString()) as JobRecord)));
      await late.subscribeAsync(`fleetflash/jobs/${job.id}/status`);
      expect((await got).state).toBe('completed');
    } finally {
      await late.endAsync();
    }
  } finally {
    await browser.endAsync();
  }
});

test('several devices in one job run in parallel', async () => {
  const devices = fleet.devices().filter((d) => d.service === 'battery');
  expect(devices.length).toBeGreaterThanOrEqual(3);
  const image = h.image(devices[0].productId);
  // A device an earlier test already brought to this version would be rejected `not-newer` at launch.
  const fits = devices.filter((d) => image.productIds.includes(d.productId) && d.version !== image.version);
  const before = fleet.truth.maxConcurrentUpdates();
  const job = await launch(image.id, fits.map((d) => d.deviceId));
  const { executions } = await finished(job.id);
  expect(executions.every((e) => e.state === 'succeeded')).toBe(true);
  expect(fleet.truth.maxConcurrentUpdates()).toBeGreaterThanOrEqual(Math.min(fits.length, 2));
  expect(fleet.truth.maxConcurrentUpdates()).toBeGreaterThanOrEqual(before);
});

test('a device already updating in another job gets a rejected execution, never a second update', async () => {
  const device = deviceOf(fleet, 'vebus', 1);
  const image = h.image(device.productId);
  const [a, b] = await Promise.all([launch(image.id, [device.deviceId]), launch(image.id, [device.deviceId])]);
  const [ra, rb] = await Promise.all([finished(a.id), finished(b.id)]);
  const states = [ra.executions[0].state, rb.executions[0].state].sort();
  expect(states).toEqual(['rejected', 'succeeded']);
  const rejected = [ra, rb].find((r) => r.executions[0].state === 'rejected')!.executions[0];
  expect(rejected.error?.code).toBe('device-busy');
  expect(rejected.installAccepted).toBe(false);
  expect(fleet.truth.installsAccepted(device.deviceId)).toBe(1);
});

test.each([
  ['a product behind the GX', 'solarcharger', 'platform'],
  ['the GX', 'platform', 'solarcharger'],
])('while %s updates, the other side of the site waits (site-busy) and updates after it', async (_name, firstService, secondService) => {
  // Slow enough to launch the second job while the first device updates.
  const site = await h.addFleet({ sites: 1, salt: `site-busy-${firstService}`, timeScale: 50, mix: { vebus: 0, solarcharger: 1, battery: 0 } });
  const [first, second] = [firstService, secondService].map((service) => deviceOf(site, service));
  // One attempt only: waiting for the site must not use it up. A long pause: the wait must end when
  // the site frees, not when the pause does.
  const retry = { maxAttempts: 1, backoffMs: 20_000 };
  const firstJob = await launch(h.image(first.productId).id, [first.deviceId], { allowSameVersion: true });
  await waitFor(async () => (await readJob(h, firstJob.id)).executions[0].installAccepted, 10_000, 'the first update to start');
  const secondJob = await launch(h.image(second.productId).id, [second.deviceId], { allowSameVersion: true, retry });
  const [a, b] = await Promise.all([finished(firstJob.id, 60_000), finished(secondJob.id, 60_000)]);
  expect([a.executions[0].state, b.executions[0].state]).toEqual(['succeeded', 'succeeded']);
  expect(b.executions[0].siteWaits ?? 0).toBeGreaterThanOrEqual(1);
  expect(b.executions[0].retries).toBe(b.executions[0].siteWaits);
  expect((await events(secondJob.id)).some((e) => e.message.startsWith('waiting for the site (site-busy)'))).toBe(true);
  // Ground truth: the second device accepted its install only once the first had finished.
  const [x] = site.truth.executions().filter((e) => e.jobId === firstJob.id);
  const [y] = site.truth.executions().filter((e) => e.jobId === secondJob.id);
  expect(x.finishedAt).not.toBeNull();
  expect(y.acceptedAt).toBeGreaterThanOrEqual(x.finishedAt!);
  // Woken when the first execution freed its lock, well before its 20 s pause was over.
  expect(y.acceptedAt! - x.finishedAt!).toBeLessThan(5000);
});

describe('faults', () => {
  test('a bad SHA-256 fails the execution with checksum-mismatch', async () => {
    const bad = await h.addFleet({ sites: 1, salt: 'sha', faults: { checksumMismatch: 1 } });
    const device = deviceOf(bad, 'solarcharger');
    const job = await launch(h.image(device.productId).id, [device.deviceId]);
    const { executions } = await finished(job.id);
    expect(executions[0]).toMatchObject({ state: 'failed', installAccepted: true, error: { code: 'checksum-mismatch' } });
  });

  test('a device that refuses the install is rejected with its own code', async () => {
    const refusing = await h.addFleet({ sites: 1, salt: 'refuse', faults: { notUpdatable: 1 } });
    const device = deviceOf(refusing, 'battery');
    const job = await launch(h.image(device.productId).id, [device.deviceId]);
    const { executions } = await finished(job.id);
    expect(executions[0].state).toBe('rejected');
    expect(executions[0].installAccepted).toBe(false);
    expect(['1341', '1342', '1343', '1344']).toContain(executions[0].error?.code);
  });

  test('a device that never comes back after reboot times out', async () => {
    const lost = await h.addFleet({ sites: 1, salt: 'lost', faults: { neverReturns: 1 } });
    const device = deviceOf(lost, 'platform');
    const job = await launch(h.image(device.productId).id, [device.deviceId], { timeouts: { rebootingMs: 1500 } });
    const { executions } = await finished(job.id);
    expect(executions[0]).toMatchObject({ state: 'timed_out', phase: 'rebooting', error: { code: 'timeout-rebooting' } });
  });
});
