/**
 * fleetflash with an external broker instead of the embedded one: the machine's Mosquitto on
 * 127.0.0.1:1883 (`MQTT_URL`, roles api,worker, no broker role). Sites, workers and the status topics
 * all go through Mosquitto. That Mosquitto allows anonymous clients, so this checks the functional
 * flow only; the ACL such a broker must enforce is documented in the README, not enforced here.
 * Skipped when nothing listens on 1883. Retained messages it leaves are cleared afterwards.
 */
import net from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import type { ExecutionRecord, JobRecord } from '../../src/protocol/index.js';
import { metric, parsePromText } from '../helpers/prom-text.js';
import { startHarness, waitFor, type Harness } from '../helpers/service-harness.js';

const MOSQUITTO = 'mqtt://127.0.0.1:1883';
const BROWSER_URL = 'wss://mqtt.example.test/mqtt';

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

const available = await portOpen(1883);
const describeWithMosquitto = available ? describe : describe.skip;

describeWithMosquitto('external broker (Mosquitto on 1883)', () => {
  let h: Harness;
  let observer: MqttClient;
  const retainedFilters: string[] = [];

  beforeAll(async () => {
    h = await startHarness({ env: { ROLE: 'api,worker', MQTT_URL: MOSQUITTO, MQTT_BROWSER_URL: BROWSER_URL } });
    observer = await mqtt.connectAsync(MOSQUITTO, { clientId: `ff-test-observer-${process.pid}`, protocolVersion: 4 });
  }, 60_000);

  afterAll(async () => {
    await h?.close();
    // Leave the shared broker as it was: clear every retained message this test caused.
    const seen = new Set<string>();
    observer.on('message', (topic, payload) => {
      if (payload.length) seen.add(topic);
    });
    if (retainedFilters.length) await observer.subscribeAsync(retainedFilters, { qos: 1 });
    await new Promise((r) => setTimeout(r, 500));
    for (const topic of seen) await observer.publishAsync(topic, '', { qos: 1, retain: true });
    await observer?.endAsync();
  });

  test('sites, workers and status topics work through Mosquitto', async () => {
    expect(h.service.broker).toBeNull();
    expect(h.service.mqttUrl).toBe(MOSQUITTO);
    const fleet = await h.addFleet({ sites: 2, salt: `mosq-${process.pid}`, mix: { vebus: 0, solarcharger: 1, battery: 0 } });
    const portalIds = fleet.sites.map((s) => s.portalId);
    const solar = fleet.devices().filter((x) => x.service === 'solarcharger');
    retainedFilters.push('fleetflash/system/#', ...portalIds.map((id) => `N/${id}/#`), ...fleet.devices().map((x) => `fleetflash/devices/${x.deviceId}`));

    const res = await h.api('/api/jobs', { method: 'POST', json: { firmwareId: h.image(solar[0].productId).id, devices: solar.map((x) => x.deviceId) } });
    expect(res.status).toBe(202);
    const { job } = (await res.json()) as { job: JobRecord };
    retainedFilters.push(`fleetflash/jobs/${job.id}/#`);
    const latest = new Map<string, ExecutionRecord>();
    observer.on('message', (topic, payload) => {
      if (!topic.startsWith(`fleetflash/jobs/${job.id}/devices/`) || !payload.length) return;
      const r = JSON.parse(payload.toString()) as ExecutionRecord;
      if ((latest.get(r.deviceId)?.seq ?? -1) < r.seq) latest.set(r.deviceId, r);
    });
    await observer.subscribeAsync(`fleetflash/jobs/${job.id}/devices/+`, { qos: 1 });

    const done = await waitFor(async () => {
      const r = (await (await h.api(`/api/jobs/${job.id}`)).json()) as { job: JobRecord; executions: ExecutionRecord[] };
      return r.job.state === 'completed' ? r : null;
    }, 30_000, 'the job');
    expect(done.job.counts.succeeded).toBe(solar.length);
    // A subscriber of the external broker saw every device's final record.
    await waitFor(() => solar.every((x) => latest.get(x.deviceId)?.state === 'succeeded'), 5000, 'final records on Mosquitto');
    for (const x of solar) expect(fleet.devices().find((y) => y.deviceId === x.deviceId)?.version).toBe(h.image(x.productId).version);
  }, 60_000);

  test('browsers are sent to MQTT_BROWSER_URL; readiness and metrics need no embedded broker', async () => {
    const creds = (await (await h.api('/api/mqtt-credentials', { method: 'POST', token: h.viewerToken })).json()) as { url: string };
    expect(creds.url).toBe(BROWSER_URL);
    const ready = await fetch(`${h.base}/readyz`);
    expect(await ready.json()).toEqual({ ok: true, checks: { redis: true, mqtt: true, worker: true } });
    const m = parsePromText(await (await h.api('/metrics', { token: h.viewerToken })).text());
    expect(metric(m, 'fleetflash_service_mqtt_connected')).toBe(1);
    expect(m.some((s) => s.name === 'fleetflash_mqtt_connections')).toBe(false);
  });
});

if (!available) {
  test.skip('external broker: nothing listens on 127.0.0.1:1883', () => undefined);
}
