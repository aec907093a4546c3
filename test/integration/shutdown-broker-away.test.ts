/**
 * A service stopped while its broker is away (stopped in the same deploy, restarting) does not wait
 * for the broker: the worker hands its executions over to the queue (Redis), the status publishes
 * nobody can acknowledge are left (they are in Redis; the restorer republishes them to a broker that
 * lost them), and the MQTT client ends at once. Before, the publisher's flush and mqtt.js' end both
 * waited for acknowledgements from a broker that was gone, and the process ended only at its 20 s limit.
 * Real service (api and worker roles) against a plain in-process broker, real Redis, a simulated site.
 */
import type { ExecutionRecord, JobRecord } from '../../src/protocol/index.js';
import { startPlainBroker } from '../helpers/plain-broker.js';
import { startHarness, waitFor } from '../helpers/service-harness.js';
import { within } from '../helpers/within.js';

test('a worker stopped while the broker is away hands over and ends without waiting for the broker', async () => {
  const broker = await startPlainBroker();
  const h = await startHarness({ env: { ROLE: 'api,worker', MQTT_URL: broker.url }, captureLogs: true });
  let closing: Promise<void> | null = null;
  try {
    const fleet = await h.addFleet({ sites: 1, salt: `away-${process.pid}`, mix: { vebus: 0, solarcharger: 1, battery: 0 } });
    const device = fleet.devices().find((d) => d.service === 'solarcharger')!;
    const res = await h.api('/api/jobs', { method: 'POST', json: { firmwareId: h.image(device.productId).id, devices: [device.deviceId] } });
    expect(res.status).toBe(202);
    const { job } = (await res.json()) as { job: JobRecord };
    const jobId = job.id;
    // The update under way on the device: the worker holds it.
    await waitFor(async () => {
      const r = (await (await h.api(`/api/jobs/${jobId}`)).json()) as { job: JobRecord; executions: ExecutionRecord[] };
      return r.executions[0]?.installAccepted === true;
    }, 20_000, 'the install accepted');
    expect(h.service.worker!.running()).toBe(1);

    for (const f of h.fleets.splice(0)) await f.stop();
    await broker.close();
    await waitFor(async () => {
      const r = await fetch(`${h.base}/readyz`);
      const body = (await r.json()) as { checks: { mqtt: boolean } };
      return r.status === 503 && body.checks.mqtt === false;
    }, 10_000, 'the service to see the broker gone');
    // An operator aborts meanwhile: answered from Redis, the update past its point of no return goes on,
    // and the abort's log line and job summary wait for a broker to acknowledge them. (Without it,
    // whether anything was left unacknowledged depended on how fast the last publishes before the
    // broker's close went through.)
    const aborted = await h.api(`/api/jobs/${jobId}/abort`, { method: 'POST' });
    expect(aborted.status).toBe(200);
    expect(((await aborted.json()) as { inFlight: number }).inFlight).toBe(1);

    closing = h.close();
    await within(closing, 8000, 'the shutdown with the broker away');
    const warned = h.logs.find((l) => l.msg.startsWith('broker away at shutdown'));
    expect(warned?.unacknowledged).toBeGreaterThanOrEqual(2);
  } finally {
    if (!closing) await h.close().catch(() => undefined);
  }
}, 60_000);
