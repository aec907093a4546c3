/**
 * A product that comes back from its reboot is asked at once: the worker follows the product's
 * `Connected` leaf (and the GX's serial) of the sites it supervises, so confirmation does not wait
 * for the next status poll. The service here runs every role on one MQTT connection, shared with the
 * fleet monitor's subscriptions: only the presence topics may make the worker ask the device.
 */
import { realTimeProtocolTimers, type Fleet } from '../../devices-sim/index.js';
import type { ExecutionRecord, JobRecord } from '../../src/protocol/index.js';
import { startHarness, waitFor, type Harness } from '../helpers/service-harness.js';

const POLL_MS = 120_000;
let h: Harness;
let fleet: Fleet;
/** `firmware.status` requests seen by the broker, per portal id. */
const statusCalls = new Map<string, number>();

beforeAll(async () => {
  // Status polls two minutes apart: a test that passes cannot have waited for one.
  h = await startHarness({ statusPollMs: POLL_MS });
  // The sites' alive window runs in real time, as the worker's keepalive does (device work is compressed).
  fleet = await h.addFleet({
    sites: 2,
    salt: 'presence',
    mix: { vebus: 1, solarcharger: 1, battery: 1 },
    durations: realTimeProtocolTimers(1000),
  });
  h.service.broker!.aedes.on('publish', (packet) => {
    const m = /^P\/([0-9a-f]{12})\/in\//.exec(packet.topic);
    if (!m) return;
    const { method } = JSON.parse(packet.payload.toString()) as { method: string };
    if (method === 'firmware.status') statusCalls.set(m[1], (statusCalls.get(m[1]) ?? 0) + 1);
  });
});

afterAll(async () => {
  await h?.close();
});

test.each(['solarcharger', 'battery', 'vebus', 'platform'])(
  'a %s back from its reboot is confirmed at once, with one status request before and one after',
  async (service) => {
    const device = fleet.devices().find((d) => d.service === service)!;
    const portalId = device.deviceId.slice(0, 12);
    const before = statusCalls.get(portalId) ?? 0;
    const image = h.image(device.productId);
    const res = await h.api('/api/jobs', {
      method: 'POST',
      json: { firmwareId: image.id, devices: [device.deviceId] },
    });
    expect(res.status).toBe(202);
    const { job } = (await res.json()) as { job: JobRecord };
    const started = Date.now();
    const done = await waitFor(
      async () => {
        const body = (await (await h.api(`/api/jobs/${job.id}`)).json()) as {
          job: JobRecord;
          executions: ExecutionRecord[];
        };
        return body.job.state === 'completed' ? body : null;
      },
      POLL_MS / 4,
      `job ${job.id}`,
    );
    expect(done.executions[0]).toMatchObject({ state: 'succeeded', toVersion: image.version });
    expect(Date.now() - started).toBeLessThan(POLL_MS / 4);
    // Preflight asks once; the return from the reboot asks once. The fleet monitor's notifications
    // on the same connection (every leaf of the product going away and coming back) ask nothing.
    expect((statusCalls.get(portalId) ?? 0) - before).toBe(2);
  },
);
