/**
 * Firmware updates through the RPC against a real broker and a real HTTP image server: each product
 * family end to end (progress events, GX Firmware/State, the reboot, the new version and boot id),
 * idempotent duplicates, the busy refusal, and malformed requests.
 */
import { encodeFirmwareVersion, isDeviceStatus, PHASES } from '../../src/protocol/index.js';
import { startSimFixture, TARGET_VERSION, type SimFixture } from '../helpers/sim-fixture.js';

let f: SimFixture;

beforeAll(async () => {
  f = await startSimFixture({
    sites: 6,
    seed: 5,
    timeScale: 2000,
    mix: { vebus: 1, solarcharger: 2, battery: 1 },
    portalIdSalt: 'update',
    // A long alive window (3 s at this scale) so one keepalive per test shows every change, and
    // products that stay off the bus long enough (200 ms) to be asked about it.
    durations: { aliveSec: 6000, productRebootSec: 400 },
  });
});

afterAll(async () => {
  await f?.close();
});

function progressOf(site: Parameters<SimFixture['events']>[0], rpcId: string) {
  return f.events(site, rpcId).filter((e) => e.kind === 'progress') as { phase: string; progress: number }[];
}

function expectOrderedProgress(events: { phase: string; progress: number }[]) {
  const phases = [...new Set(events.map((e) => e.phase))];
  expect(phases).toEqual(['downloading', 'verifying', 'installing', 'rebooting']);
  expect(
    phases.every((p, i) => i === 0 || PHASES.indexOf(p as never) > PHASES.indexOf(phases[i - 1] as never)),
  ).toBe(true);
  for (let i = 1; i < events.length; i++)
    expect(events[i].progress).toBeGreaterThanOrEqual(events[i - 1].progress);
  expect(events[0].progress).toBe(0);
  expect(events.at(-1)!.progress).toBeGreaterThanOrEqual(95);
  // "At most every ~5 %": 0–99 in 5 % steps plus one event per phase change.
  expect(events.length).toBeLessThanOrEqual(26);
}

test('a GX update: progress, Firmware/State, a real disconnect, and the new version with a new boot id', async () => {
  const site = await f.aliveSite();
  const gx = site.platform;
  const before = (await f.status(site, gx)).result!;
  expect(isDeviceStatus(before)).toBe(true);
  expect(before).toMatchObject({
    device: 'platform/0',
    productId: gx.product.productId,
    version: gx.version,
    busy: false,
    execution: null,
  });
  const oldVersion = gx.version;
  const from = f.probe.mark();
  const disconnected: string[] = [];
  f.broker.aedes.on('clientDisconnect', (client) => disconnected.push(client.id));

  const { rpcId, body } = await f.probe.rpc(site.portalId, 'firmware.install', f.installParams(gx, 'e-gx-1'));
  expect(body).toEqual({ result: { accepted: true, executionId: 'e-gx-1', duplicate: false } });
  const serial = `N/${site.portalId}/system/0/Serial`;
  const gone = await f.probe.next((m) => m.topic === serial && m.text === '{"value":null}', 5000, from);
  await f.probe.next(
    (m) => m.topic === serial && m.text.includes(site.portalId),
    5000,
    f.probe.messages.indexOf(gone),
  );
  expect(disconnected).toContain(`gx-${site.portalId}`);

  const after = (await f.status(site, gx)).result!;
  expect(after).toMatchObject({
    version: 'v3.72',
    busy: false,
    execution: {
      executionId: 'e-gx-1',
      jobId: 'jsim0001',
      state: 'succeeded',
      progress: 100,
      error: null,
      targetVersion: 'v3.72',
    },
  });
  expect(after.bootId).not.toBe(before.bootId);

  expectOrderedProgress(progressOf(site, rpcId));
  const states = f.probe
    .since(from, (m) => m.topic === `N/${site.portalId}/platform/0/Firmware/State`)
    .map((m) => JSON.parse(m.text).value);
  expect(states).toEqual([1002, 1003]);
  const gxProgress = f.probe
    .since(from, (m) => m.topic === `N/${site.portalId}/platform/0/Firmware/Progress`)
    .map((m) => JSON.parse(m.text).value);
  expect(gxProgress[0]).toBe(0);
  expect(gxProgress.at(-1)).toBe(100);

  // Back after the reboot: not alive until someone asks, then the new version everywhere.
  const reread = f.probe.mark();
  f.probe.publish(`R/${site.portalId}/platform/0/Firmware/Installed/Version`);
  const installed = await f.probe.next(
    (m) => m.topic.endsWith('/platform/0/Firmware/Installed/Version'),
    5000,
    reread,
  );
  expect(JSON.parse(installed.text).value).toBe('v3.72');
  expect(f.fleet.devices().find((d) => d.deviceId === gx.deviceId)).toMatchObject({
    version: 'v3.72',
    online: true,
  });
  expect(f.fleet.truth.device(gx.deviceId)?.versions.map((v) => v.version)).toEqual([oldVersion, 'v3.72']);
  expect(f.fleet.truth.execution(gx.deviceId, 'e-gx-1')).toMatchObject({
    result: 'succeeded',
    finalVersion: 'v3.72',
  });
  expect(f.fleet.truth.device(gx.deviceId)?.bytesDownloaded).toBe(f.image.size);
  // The download URL was used as given, token included.
  expect(f.images.requests.some((r) => r.token === 'sig-4f2a' && r.status === 200)).toBe(true);
});

test('a VE.Bus update runs backup, flash and restore, leaves the bus while rebooting and returns with the new firmware', async () => {
  const site = await f.aliveSite();
  const vebus = site.devices.find((d) => d.service === 'vebus')!;
  const base = `N/${site.portalId}/vebus/${vebus.instance}`;
  const from = f.probe.mark();
  const { rpcId } = await f.probe.rpc(site.portalId, 'firmware.install', f.installParams(vebus, 'e-vb-1'));
  // Leaving the bus: Connected 0, then an empty payload on every topic of the service.
  await f.probe.next((m) => m.topic === `${base}/Connected` && m.text === '{"value":0}', 5000, from);
  const emptied = await f.probe.next((m) => m.topic === `${base}/ProductId` && m.text === '', 5000, from);
  expect((await f.status(site, vebus)).error).toMatchObject({ code: 'device-offline' });
  const back = await f.probe.next(
    (m) => m.topic === `${base}/Connected` && m.text === '{"value":1}',
    5000,
    f.probe.messages.indexOf(emptied),
  );
  const fw = f.probe
    .since(f.probe.messages.indexOf(emptied))
    .find((m) => m.topic === `${base}/FirmwareVersion` && m.text !== '' && m.at <= back.at);
  expect(JSON.parse(fw!.text).value).toBe(encodeFirmwareVersion('vebus', 'v510'));

  const events = progressOf(site, rpcId);
  expectOrderedProgress(events);
  // Backup 65–70, flash 70–90, restore 90–95: several install steps, not one jump.
  expect(events.filter((e) => e.phase === 'installing').map((e) => e.progress)).toEqual([
    65, 70, 75, 80, 85, 90, 95,
  ]);
  const after = (await f.status(site, vebus)).result;
  expect(after).toMatchObject({
    version: 'v510',
    busy: false,
    degraded: false,
    execution: { state: 'succeeded' },
  });
});

test('VE.Direct products update in parallel on one site', async () => {
  const site = await f.aliveSite();
  const targets = site.devices.filter((d) => d.service === 'solarcharger' || d.service === 'battery');
  expect(targets).toHaveLength(3);
  const peakBefore = f.fleet.truth.maxConcurrentUpdates();
  const rpcs = await Promise.all(
    targets.map((d, i) => f.probe.rpc(site.portalId, 'firmware.install', f.installParams(d, `e-vd-${i}`))),
  );
  for (const r of rpcs) expect(r.body).toMatchObject({ result: { accepted: true, duplicate: false } });
  for (const d of targets) {
    await f.probe.next(
      (m) =>
        m.topic === `N/${site.portalId}/${d.service}/${d.instance}/Connected` && m.text === '{"value":1}',
      5000,
    );
    expect(d.version).toBe(TARGET_VERSION[d.service]);
  }
  expect(f.fleet.truth.maxConcurrentUpdates()).toBeGreaterThanOrEqual(Math.max(3, peakBefore));
  expect(f.fleet.truth.devicesOnVersion('v1.67')).toEqual(
    expect.arrayContaining(targets.filter((d) => d.service === 'solarcharger').map((d) => d.deviceId)),
  );
});

test('install is idempotent per executionId, and a second execution is refused while busy', async () => {
  const site = await f.aliveSite();
  const solar = site.devices.find((d) => d.service === 'solarcharger')!;
  const first = await f.probe.rpc(site.portalId, 'firmware.install', f.installParams(solar, 'e-dup-1'));
  expect(first.body).toMatchObject({ result: { duplicate: false } });
  const again = await f.probe.rpc(site.portalId, 'firmware.install', f.installParams(solar, 'e-dup-1'));
  expect(again.body).toEqual({ result: { accepted: true, executionId: 'e-dup-1', duplicate: true } });
  const other = await f.probe.rpc(site.portalId, 'firmware.install', f.installParams(solar, 'e-dup-2'));
  expect(other.body).toEqual({
    error: { code: 'busy', message: 'waiting for a task to finish (execution e-dup-1)' },
  });

  await f.probe.next(
    (m) =>
      m.topic === `N/${site.portalId}/solarcharger/${solar.instance}/Connected` && m.text === '{"value":1}',
    5000,
  );
  // Events moved to the newest rpc id that named the execution.
  expect(progressOf(site, again.rpcId).at(-1)?.phase).toBe('rebooting');
  const late = await f.probe.rpc(site.portalId, 'firmware.install', f.installParams(solar, 'e-dup-1'));
  expect(late.body).toMatchObject({ result: { duplicate: true } });
  expect(f.fleet.truth.installCount(solar.deviceId, 'e-dup-1')).toBe(3);
  expect(f.fleet.truth.acceptedCount(solar.deviceId, 'e-dup-1')).toBe(1);
  expect(f.fleet.truth.installsAccepted(solar.deviceId)).toBe(1);
  expect(f.fleet.truth.device(solar.deviceId)?.installs.map((i) => i.outcome)).toEqual([
    'accepted',
    'duplicate',
    'refused',
    'duplicate',
  ]);
  expect(f.fleet.truth.maxInstallsPerExecution()).toBeGreaterThanOrEqual(3);
  expect(f.images.requests.filter((r) => r.status === 200).length).toBeGreaterThan(0);
});

test('malformed or misaddressed requests get an error answer and the site keeps working', async () => {
  const site = await f.aliveSite();
  const solar = site.devices.find((d) => d.service === 'solarcharger')!;
  const out = (rpcId: string) => `P/${site.portalId}/out/${rpcId}`;
  let from = f.probe.mark();
  f.probe.publish(`P/${site.portalId}/in/bad1`, 'not json at all');
  const bad = await f.probe.next((m) => m.topic === out('bad1'), 5000, from);
  expect(JSON.parse(bad.text)).toEqual({ error: { code: 'bad-request', message: expect.any(String) } });
  from = f.probe.mark();
  f.probe.publish(`P/${site.portalId}/in/bad2`, {
    method: 'firmware.install',
    params: { ...f.installParams(solar, 'x'), sha256: 'nope' },
  });
  expect(JSON.parse((await f.probe.next((m) => m.topic === out('bad2'), 5000, from)).text).error.code).toBe(
    'bad-request',
  );

  expect((await f.probe.rpc(site.portalId, 'firmware.reboot', { device: solar.local })).body).toMatchObject({
    error: { code: 'bad-request' },
  });
  expect(
    (await f.probe.rpc(site.portalId, 'firmware.status', { device: 'solarcharger/299' })).body,
  ).toMatchObject({ error: { code: 'unknown-device' } });
  expect(
    (
      await f.probe.rpc(
        site.portalId,
        'firmware.install',
        f.installParams(solar, 'e-wrong', { productIds: [0x2780] }),
      )
    ).body,
  ).toMatchObject({
    error: { code: 'vbdup-123' },
  });
  const ok = (await f.status(site, solar)).result;
  expect(isDeviceStatus(ok)).toBe(true);
});
