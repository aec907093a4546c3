/**
 * Time-driven rollout rules on a fake clock, end to end with simulated devices: the per-minute
 * launch rate, the start time and the daily maintenance window. The clock only moves when a test
 * moves it; after each move the test waits for the controller to act on what it knows.
 */
import type { Fleet } from '../../devices-sim/index.js';
import type { FirmwareRecord } from '../../src/protocol/index.js';
import { RATE_WINDOW_MS } from '../../src/rollout/release-decision.js';
import type { RolloutController } from '../../src/rollout/rollout-controller.js';
import { FakeClock } from '../helpers/fake-clock.js';
import {
  installsOf,
  jobFinished,
  jobWhere,
  launchJob,
  readJob,
  solarChargers,
} from '../helpers/rollout-helpers.js';
import { startHarness, type Harness } from '../helpers/service-harness.js';

const MPPT = 0xa058;
const ONLY_MPPTS = (n: number) => ({ mix: { vebus: 0, battery: 0, solarcharger: n } });
/** Whole updates over simulated sites: generous, for a loaded CI machine. */
const SLOW = 90_000;

let h: Harness;
let clock: FakeClock;
let controller: RolloutController;
let image: FirmwareRecord;

beforeAll(async () => {
  clock = new FakeClock('2026-03-02T01:30:00Z');
  h = await startHarness({ clock });
  controller = h.service.rollout!;
  image = h.image(MPPT);
});

afterAll(async () => {
  await h?.close();
});

/** Moves the clock and waits until the controller has acted on everything it knows. */
async function advance(ms: number): Promise<void> {
  clock.advance(ms);
  await controller.settle();
}

test(
  'perMinute: at most N start in any minute (and one per second at 3/min), measured on the devices',
  async () => {
    const fleet = await h.addFleet({ sites: 1, salt: 'sched-rate', ...ONLY_MPPTS(7) });
    const launchedAt = clock.now();
    const job = await launchJob(h, {
      firmwareId: image.id,
      devices: solarChargers(fleet),
      rollout: { perMinute: 3 },
    });
    /** At launch + offsetMs, exactly `started` executions have been released, run, and reached the devices. */
    const at = async (offsetMs: number, started: number) => {
      clock.set(launchedAt + offsetMs);
      await controller.settle();
      const what = `${started} started at +${offsetMs} ms`;
      await jobWhere(
        h,
        job.id,
        (v) =>
          v.job.release.released === started &&
          v.job.counts.succeeded === started &&
          v.job.counts.in_progress === 0,
        what,
      );
      expect([what, installsOf(fleet, job.id).length]).toEqual([what, started]);
    };
    await at(0, 1);
    await at(999, 1);
    await at(1000, 2);
    await at(2000, 3);
    await at(RATE_WINDOW_MS - 1, 3);
    await at(RATE_WINDOW_MS, 4);
    await at(RATE_WINDOW_MS + 1000, 5);
    await at(RATE_WINDOW_MS + 2000, 6);
    await at(2 * RATE_WINDOW_MS - 1, 6);
    await at(2 * RATE_WINDOW_MS, 7);
    const { job: done } = await jobFinished(h, job.id);
    expect(done.counts.succeeded).toBe(7);
    expect(fleet.truth.maxInstallsPerExecution()).toBe(1);
  },
  SLOW,
);

test(
  'a start time holds every execution back until it comes',
  async () => {
    const fleet = await h.addFleet({ sites: 1, salt: 'sched-start', ...ONLY_MPPTS(2) });
    const startAt = new Date(clock.now() + 10 * 60_000).toISOString();
    const job = await launchJob(h, {
      firmwareId: image.id,
      devices: solarChargers(fleet),
      schedule: { startAt },
    });
    expect(job.schedule).toEqual({ startAt });
    await controller.settle();
    await advance(9 * 60_000);
    const before = await readJob(h, job.id);
    expect(before.job).toMatchObject({ state: 'queued', release: { released: 0 } });
    expect(installsOf(fleet, job.id)).toHaveLength(0);
    await advance(60_000);
    const { job: done } = await jobFinished(h, job.id);
    expect(done.counts.succeeded).toBe(2);
  },
  SLOW,
);

describe('daily maintenance window 02:00–03:00 UTC', () => {
  let fleet: Fleet;
  beforeAll(async () => {
    fleet = await h.addFleet({ sites: 1, salt: 'sched-window', ...ONLY_MPPTS(2) });
    clock.set('2026-03-03T01:30:00Z');
  });

  test(
    'nothing starts before the window opens; everything once it has',
    async () => {
      const devices = solarChargers(fleet);
      const job = await launchJob(h, {
        firmwareId: image.id,
        devices: [devices[0]],
        schedule: { window: { start: '02:00', end: '03:00' } },
      });
      await controller.settle();
      await advance(29 * 60_000);
      expect((await readJob(h, job.id)).job).toMatchObject({ state: 'queued', release: { released: 0 } });
      expect(installsOf(fleet, job.id)).toHaveLength(0);
      await advance(60_000); // 02:00
      const { job: done } = await jobFinished(h, job.id);
      expect(done.counts.succeeded).toBe(1);
    },
    SLOW,
  );

  test(
    'an execution in flight when the window closes finishes; the next waits for tomorrow',
    async () => {
      const device = fleet.sites[0].devices.filter((d) => d.service === 'solarcharger')[1];
      const other = await h.addFleet({ sites: 1, salt: 'sched-window-2', ...ONLY_MPPTS(1) });
      clock.set('2026-03-03T02:59:00Z');
      // The first device is off the bus, so its preflight is still asking when the window closes.
      device.online = false;
      const job = await launchJob(h, {
        firmwareId: image.id,
        devices: [device.deviceId, solarChargers(other)[0]],
        rollout: { maxConcurrent: 1 },
        schedule: { window: { start: '02:00', end: '03:00' } },
      });
      await jobWhere(
        h,
        job.id,
        (v) => v.executions.some((e) => e.deviceId === device.deviceId && e.state === 'in_progress'),
        'the first in preflight',
      );
      await advance(60_000); // 03:00: closed
      device.online = true;
      await jobWhere(h, job.id, (v) => v.job.counts.succeeded === 1, 'the first to finish');
      await controller.settle();
      const closed = await readJob(h, job.id);
      expect(closed.job.release).toMatchObject({ released: 1, inFlight: 0 });
      expect(closed.executions.find((e) => e.deviceId !== device.deviceId)?.state).toBe('queued');
      expect(installsOf(other, job.id)).toHaveLength(0);
      clock.set('2026-03-04T01:59:00Z');
      await controller.settle();
      expect(installsOf(other, job.id)).toHaveLength(0);
      await advance(60_000); // 02:00 the next day
      const { job: done } = await jobFinished(h, job.id);
      expect(done.counts.succeeded).toBe(2);
    },
    SLOW,
  );
});
