/**
 * Injected faults, each producing its own error code or behaviour. The fleet runs every fault at
 * the same rate; `plannedFault` tells the test which execution id gets which fault, as it would
 * tell any test that wants to predict a seeded fleet.
 */
import {
  FAULT_KINDS,
  plannedFault,
  planInstall,
  type FaultKind,
  type SimDevice,
  type SimSite,
} from '../../devices-sim/index.js';
import { startSimFixture, TARGET_VERSION, type SimFixture } from '../helpers/sim-fixture.js';

const SEED = 21;
const RATES = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0.09])) as Record<FaultKind, number>;
const TIME_SCALE = 2000;

let f: SimFixture;

beforeAll(async () => {
  f = await startSimFixture(
    {
      sites: 14,
      seed: SEED,
      timeScale: TIME_SCALE,
      mix: { vebus: 1, solarcharger: 1, battery: 1 },
      faults: RATES,
      portalIdSalt: 'faults',
      // 1 h stall → 1.8 s here; long alive window so returning products are seen.
      durations: { aliveSec: 6000, productRebootSec: 200 },
    },
    // Large enough for slowLink to be measurable: 1 MiB at 20 KB/s × 2000 is ~26 ms.
    1024 * 1024,
  );
});

afterAll(async () => {
  await f?.close();
});

/** The first execution id that the seed assigns `kind` to on this device. */
function executionFor(device: SimDevice, kind: FaultKind): string {
  for (let i = 0; i < 10_000; i++) {
    const id = `x-${kind}-${i}`;
    if (plannedFault(SEED, device.deviceId, id, RATES) === kind) return id;
  }
  throw new Error(`no execution id gives ${kind} on ${device.deviceId}`);
}

function on(site: SimSite, service: string): SimDevice {
  return site.devices.find((d) => d.service === service)!;
}

test('notUpdatable: the device refuses with one of 1341–1344, as planned', async () => {
  const site = await f.aliveSite();
  const battery = on(site, 'battery');
  const id = executionFor(battery, 'notUpdatable');
  const code = planInstall(SEED, battery.deviceId, id, RATES).notUpdatableCode;
  const { body } = await f.install(site, battery, id);
  expect(body).toEqual({ error: { code, message: expect.any(String) } });
  expect(['1341', '1342', '1343', '1344']).toContain(code);
  expect(f.fleet.truth.device(battery.deviceId)?.installs.at(-1)).toMatchObject({ outcome: 'refused', code });
  expect(battery.busy).toBe(false);
});

test('wrongModel: vbdup-123 even though the product id matches', async () => {
  const site = await f.aliveSite();
  const solar = on(site, 'solarcharger');
  const { body } = await f.install(site, solar, executionFor(solar, 'wrongModel'));
  expect(body).toMatchObject({
    error: { code: 'vbdup-123', message: expect.stringContaining('does not match the model') },
  });
});

test('noResponse: a VE.Bus update fails with vbdup-122 early in the install, firmware unchanged', async () => {
  const site = await f.aliveSite();
  const vebus = on(site, 'vebus');
  const before = vebus.version;
  const { rpcId, body } = await f.install(site, vebus, executionFor(vebus, 'noResponse'));
  expect(body).toMatchObject({ result: { accepted: true } });
  expect(await f.failure(site, rpcId)).toEqual({
    code: 'vbdup-122',
    message: 'the interface did not respond',
  });
  const progress = f.events(site, rpcId).filter((e) => e.kind === 'progress');
  expect(progress.at(-1)).toMatchObject({ phase: 'installing' });
  expect(progress.at(-1)!.progress).toBeLessThanOrEqual(70);
  expect((await f.status(site, vebus)).result).toMatchObject({
    version: before,
    busy: false,
    degraded: false,
    execution: { state: 'failed', error: { code: 'vbdup-122' } },
  });
});

test('restoreFailed: mk2vsc-61, new firmware but degraded (settings lost)', async () => {
  const site = await f.aliveSite();
  const vebus = on(site, 'vebus');
  const id = executionFor(vebus, 'restoreFailed');
  const { rpcId } = await f.install(site, vebus, id);
  expect(await f.failure(site, rpcId)).toMatchObject({ code: 'mk2vsc-61' });
  expect((await f.status(site, vebus)).result).toMatchObject({
    version: TARGET_VERSION.vebus,
    degraded: true,
    execution: { state: 'failed' },
  });
  expect(f.fleet.truth.device(vebus.deviceId)).toMatchObject({ degraded: true });
  expect(f.fleet.truth.execution(vebus.deviceId, id)).toMatchObject({
    result: 'failed',
    fault: 'restoreFailed',
    finalVersion: TARGET_VERSION.vebus,
  });
  expect(f.fleet.devices().find((d) => d.deviceId === vebus.deviceId)).toMatchObject({ degraded: true });
});

test('checksumMismatch: fails after verifying with checksum-mismatch; GX shows state 998', async () => {
  const site = await f.aliveSite();
  const gx = site.platform;
  const before = gx.version;
  const from = f.probe.mark();
  const { rpcId } = await f.install(site, gx, executionFor(gx, 'checksumMismatch'));
  expect(await f.failure(site, rpcId)).toMatchObject({ code: 'checksum-mismatch' });
  expect(
    f
      .events(site, rpcId)
      .filter((e) => e.kind === 'progress')
      .at(-1),
  ).toMatchObject({ phase: 'verifying' });
  await f.probe.next(
    (m) => m.topic === `N/${site.portalId}/platform/0/Firmware/State` && m.text === '{"value":998}',
    5000,
    from,
  );
  expect(gx.version).toBe(before);
  expect(site.connected).toBe(true);
});

test('a real hash mismatch (wrong sha256 in the request) fails the same way', async () => {
  const site = await f.aliveSite();
  const solar = on(site, 'solarcharger');
  let id = 'x-clean-0';
  for (let i = 0; plannedFault(SEED, solar.deviceId, id, RATES) !== null; i++) id = `x-clean-${i}`;
  const { rpcId } = await f.install(site, solar, id, { sha256: 'f'.repeat(64) });
  expect(await f.failure(site, rpcId)).toMatchObject({ code: 'checksum-mismatch' });
});

test('an image the server does not have fails with download-failed; a GX shows 997 (update file not found)', async () => {
  const site = await f.aliveSite();
  const gx = site.platform;
  let id = 'x-404-0';
  for (let i = 0; plannedFault(SEED, gx.deviceId, id, RATES) !== null; i++) id = `x-404-${i}`;
  const from = f.probe.mark();
  const { rpcId } = await f.install(site, gx, id, {
    url: `${f.images.base}/firmware/${'0'.repeat(64)}?token=t`,
  });
  expect(await f.failure(site, rpcId)).toMatchObject({
    code: 'download-failed',
    message: expect.stringContaining('404'),
  });
  await f.probe.next(
    (m) => m.topic === `N/${site.portalId}/platform/0/Firmware/State` && m.text === '{"value":997}',
    5000,
    from,
  );
  expect(gx.busy).toBe(false);
});

test('dropMidDownload: the connection dies half-way and the download resumes with Range', async () => {
  const site = await f.aliveSite();
  const solar = on(site, 'solarcharger');
  const requestsBefore = f.images.requests.length;
  const from = f.probe.mark();
  await f.install(site, solar, executionFor(solar, 'dropMidDownload'));
  await f.returned(site, solar, from);
  const requests = f.images.requests.slice(requestsBefore);
  expect(requests.map((r) => r.status)).toEqual([200, 206]);
  expect(requests[1].range).toMatch(/^bytes=\d+-$/);
  expect(Number(/\d+/.exec(requests[1].range!)![0])).toBeGreaterThanOrEqual(f.image.size / 2);
  expect(requests.every((r) => r.token === 'sig-4f2a')).toBe(true);
  expect(solar.version).toBe(TARGET_VERSION.solarcharger);
  // Resumed, not restarted: every byte fetched once.
  expect(f.fleet.truth.device(solar.deviceId)?.bytesDownloaded).toBe(f.image.size);
});

test('slowLink: downloads at 20 KB/s (scaled) and still succeeds', async () => {
  const site = await f.aliveSite();
  const battery = on(site, 'battery');
  const from = f.probe.mark();
  const { rpcId } = await f.install(site, battery, executionFor(battery, 'slowLink'));
  const verifying = await f.probe.next(
    (m) => m.topic === `P/${site.portalId}/out/${rpcId}` && m.text.includes('"verifying"'),
    5000,
    from,
  );
  const started = f.probe.messages.slice(from).find((m) => m.topic === `P/${site.portalId}/out/${rpcId}`)!;
  const expectedMs = (f.image.size / (20_000 * TIME_SCALE)) * 1000;
  expect(verifying.at - started.at).toBeGreaterThanOrEqual(expectedMs * 0.8);
  await f.returned(site, battery, from);
  expect(battery.version).toBe(TARGET_VERSION.battery);
});

test('downloadStall: the download hangs (busy, no progress) until the device gives up with download-timeout', async () => {
  const site = await f.aliveSite();
  const solar = on(site, 'solarcharger');
  const { rpcId } = await f.install(site, solar, executionFor(solar, 'downloadStall'));
  const stalledAt = await f.probe.next((m) => {
    const e =
      m.topic === `P/${site.portalId}/out/${rpcId}`
        ? (JSON.parse(m.text) as { phase?: string; progress?: number })
        : null;
    return e?.phase === 'downloading' && (e.progress ?? 0) >= 15;
  }, 5000);
  const during = (await f.status(site, solar)).result!;
  expect(during).toMatchObject({ busy: true, execution: { state: 'running', phase: 'downloading' } });
  expect(during.execution!.progress).toBeLessThan(25);
  // A retry while it hangs is refused: the lock is held.
  expect((await f.install(site, solar, 'x-retry-0')).body).toMatchObject({ error: { code: 'busy' } });
  const error = await f.failure(site, rpcId, 10_000);
  expect(error.code).toBe('download-timeout');
  const failedAt = f.probe.messages.find(
    (m) => m.topic === `P/${site.portalId}/out/${rpcId}` && m.text.includes('"failed"'),
  )!.at;
  expect(failedAt - stalledAt.at).toBeGreaterThanOrEqual((3600 / TIME_SCALE) * 1000 * 0.9);
  // No progress at all during the stall.
  expect(Math.max(...f.events(site, rpcId).map((e) => e.progress ?? 0))).toBeLessThan(25);
});

test('neverReturns: a GX goes offline for good; a product stays off the bus', async () => {
  const site = await f.aliveSite();
  const gx = site.platform;
  const from = f.probe.mark();
  const gxId = executionFor(gx, 'neverReturns');
  await f.install(site, gx, gxId);
  await f.probe.next(
    (m) => m.topic === `N/${site.portalId}/system/0/Serial` && m.text === '{"value":null}',
    5000,
    from,
  );
  await expect(f.fleet.waitConnected(2000)).resolves.toBeUndefined();
  expect(site.dead).toBe(true);
  expect(site.connected).toBe(false);
  expect(f.fleet.truth.execution(gx.deviceId, gxId)).toMatchObject({ result: 'lost' });
  expect(
    f.fleet
      .devices()
      .filter((d) => d.portalId === site.portalId)
      .every((d) => !d.online),
  ).toBe(true);

  const other = await f.aliveSite();
  const solar = on(other, 'solarcharger');
  const id = executionFor(solar, 'neverReturns');
  const mark = f.probe.mark();
  await f.install(other, solar, id);
  await f.probe.next(
    (m) => m.topic === `N/${other.portalId}/solarcharger/${solar.instance}/ProductId` && m.text === '',
    5000,
    mark,
  );
  expect((await f.status(other, solar)).error).toMatchObject({ code: 'device-offline' });
  expect((await f.install(other, solar, 'x-after-0')).body).toMatchObject({
    error: { code: 'device-offline' },
  });
  expect(f.fleet.truth.execution(solar.deviceId, id)).toMatchObject({ result: 'lost' });
});

test('returnsOldVersion: the product comes back on its old firmware while its execution says succeeded', async () => {
  const site = await f.aliveSite();
  const battery = on(site, 'battery');
  const before = battery.version;
  const from = f.probe.mark();
  await f.install(site, battery, executionFor(battery, 'returnsOldVersion'));
  await f.returned(site, battery, from);
  const status = (await f.status(site, battery)).result!;
  expect(status).toMatchObject({
    version: before,
    execution: { state: 'succeeded', targetVersion: TARGET_VERSION.battery },
  });
  expect(status.version).not.toBe(TARGET_VERSION.battery);
});
