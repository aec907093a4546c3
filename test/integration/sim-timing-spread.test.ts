/**
 * The simulator's timing spread against a real broker and image server: two devices told to install
 * in the same moment take as long as their installs' paces say, not the same milliseconds.
 */
import { installPace } from '../../devices-sim/index.js';
import { startSimFixture, type SimFixture } from '../helpers/sim-fixture.js';

const SPREAD = 0.5;
const SEED = 9;
let f: SimFixture;

beforeAll(async () => {
  f = await startSimFixture({
    sites: 2,
    seed: SEED,
    // 77 s of solar-charger update (download, verify 2 s, install 60 s, reboot 15 s) in ~0.8 s.
    timeScale: 100,
    mix: { vebus: 0, solarcharger: 1, battery: 0 },
    portalIdSalt: 'spread',
    timingSpread: SPREAD,
    durations: { aliveSec: 6000 },
  });
});

afterAll(async () => {
  await f?.close();
});

/** The first execution id `exec-<n>` whose pace on `deviceId` satisfies `wanted`. */
function executionWithPace(deviceId: string, wanted: (pace: number) => boolean): string {
  for (let n = 0; ; n++) {
    const id = `exec-${n}`;
    if (wanted(installPace(SEED, deviceId, id, SPREAD))) return id;
  }
}

test('installs started together finish at their own paces', async () => {
  const [a, b] = [await f.aliveSite(), await f.aliveSite()];
  const [fast, slow] = [
    a.devices.find((d) => d.service === 'solarcharger')!,
    b.devices.find((d) => d.service === 'solarcharger')!,
  ];
  const fastId = executionWithPace(fast.deviceId, (p) => p < 0.65);
  const slowId = executionWithPace(slow.deviceId, (p) => p > 1.35);
  const from = f.probe.mark();
  const started = performance.now();
  const [x, y] = await Promise.all([f.install(a, fast, fastId), f.install(b, slow, slowId)]);
  expect([x.body, y.body]).toEqual([
    { result: { accepted: true, executionId: fastId, duplicate: false } },
    { result: { accepted: true, executionId: slowId, duplicate: false } },
  ]);
  // The reboot's first event: download, verify and install are behind it, each at the install's pace.
  const rebooting = (site: typeof a, rpcId: string) =>
    f.probe.next(
      (m) => m.topic === `P/${site.portalId}/out/${rpcId}` && m.text.includes('"phase":"rebooting"'),
      10_000,
      from,
    );
  const [fastDone, slowDone] = await Promise.all([rebooting(a, x.rpcId), rebooting(b, y.rpcId)]);
  const fastMs = fastDone.at - started;
  const slowMs = slowDone.at - started;
  // Paces below 0.65 and above 1.35: at least 2× apart in nominal time (~620 ms to the reboot).
  expect(slowMs / fastMs).toBeGreaterThan(1.6);
});
