/**
 * The worker's start window (WORKER_START_WINDOW) against real Redis, the real broker, BullMQ workers
 * and simulated sites: measured on the RPC traffic through the broker, never more executions between
 * their first request to the device and the device's answer to the install than the window holds.
 */
import type { Fleet } from '../../devices-sim/index.js';
import type { FirmwareRecord } from '../../src/protocol/index.js';
import { parsePromText, metric } from '../helpers/prom-text.js';
import { jobFinished, launchJob, solarChargers } from '../helpers/rollout-helpers.js';
import { startHarness, type Harness } from '../helpers/service-harness.js';

const WINDOW = 2;
const SITES = 8;
let h: Harness;
let fleet: Fleet;
let image: FirmwareRecord;
/** Per site (one solar charger each): when the worker first asked it anything, when it answered the install. */
const starts = new Map<string, { firstRequest: number; installAnswered: number | null }>();

beforeAll(async () => {
  h = await startHarness({ env: { WORKER_START_WINDOW: String(WINDOW) } });
  fleet = await h.addFleet({
    sites: SITES,
    salt: 'start-window',
    mix: { vebus: 0, battery: 0, solarcharger: 1 },
  });
  image = h.image(fleet.devices().find((d) => d.service === 'solarcharger')!.productId);
  const installRpcs = new Set<string>();
  h.service.broker!.aedes.on('publish', (packet) => {
    const m = /^P\/([0-9a-f]{12})\/(in|out)\/(.+)$/.exec(packet.topic);
    if (!m) return;
    const [, portalId, direction, rpcId] = m;
    const at = performance.now();
    if (direction === 'in') {
      if (!starts.has(portalId)) starts.set(portalId, { firstRequest: at, installAnswered: null });
      if ((JSON.parse(packet.payload.toString()) as { method: string }).method === 'firmware.install')
        installRpcs.add(rpcId);
    } else if (installRpcs.has(rpcId) && 'result' in (JSON.parse(packet.payload.toString()) as object)) {
      starts.get(portalId)!.installAnswered ??= at;
    }
  });
});

afterAll(async () => {
  await h?.close();
});

/** The most intervals open at one moment. */
function maxOverlap(intervals: [number, number][]): number {
  const edges = intervals
    .flatMap(([a, b]) => [[a, 1] as const, [b, -1] as const])
    .sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let open = 0;
  let max = 0;
  for (const [, d] of edges) max = Math.max(max, (open += d));
  return max;
}

test('a job of 8 starts them 2 at a time, every one succeeds, and the window is empty afterwards', async () => {
  const devices = solarChargers(fleet);
  expect(devices).toHaveLength(SITES);
  const job = await launchJob(h, { firmwareId: image.id, devices });
  const { job: done } = await jobFinished(h, job.id);
  expect(done.counts.succeeded).toBe(SITES);

  expect(starts.size).toBe(SITES);
  const intervals = [...starts.values()].map((s) => {
    expect(s.installAnswered).not.toBeNull();
    return [s.firstRequest, s.installAnswered!] as [number, number];
  });
  // Without the window all 8 preflights go out at once (the overlap is 8).
  expect(maxOverlap(intervals)).toBe(WINDOW);

  const samples = parsePromText(await (await h.api('/metrics')).text());
  expect(metric(samples, 'fleetflash_worker_start_window_executions', { slot: 'starting' })).toBe(0);
  expect(metric(samples, 'fleetflash_worker_start_window_executions', { slot: 'waiting' })).toBe(0);
}, 90_000);
