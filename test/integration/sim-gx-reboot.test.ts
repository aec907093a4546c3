/**
 * The simulator's GX runs its products' updates itself, as a real GX does: when the GX reboots (its
 * own update) while it flashes a product, that product's update dies with it and the product keeps
 * its old firmware. This is what fleetflash's site lock (a GX and its products never update at once)
 * protects against; the simulator shows the harm when it is not there.
 */
import { startSimFixture, TARGET_VERSION, type SimFixture } from '../helpers/sim-fixture.js';

let f: SimFixture;

beforeAll(async () => {
  f = await startSimFixture({
    sites: 1,
    seed: 9,
    timeScale: 2000,
    mix: { vebus: 1, solarcharger: 0, battery: 0 },
    portalIdSalt: 'gx-reboot',
    // A long VE.Bus flash (2 s here) and a quick GX update: the GX reboots well inside the flash.
    durations: { aliveSec: 6000, vebusFlashSec: 4000, gxInstallSec: 10, gxRebootSec: 100 },
  });
});

afterAll(async () => {
  await f?.close();
});

test('a GX that reboots while it flashes a product: the product update fails interrupted, on its old firmware', async () => {
  const site = await f.aliveSite();
  const vebus = site.devices.find((d) => d.service === 'vebus')!;
  const oldVersion = vebus.version;
  const { rpcId, body } = await f.install(site, vebus, 'e-vebus-1');
  expect(body).toMatchObject({ result: { accepted: true } });
  await f.probe.next((m) => m.topic === `P/${site.portalId}/out/${rpcId}` && m.text.includes('"phase":"installing"'), 5000);

  const from = f.probe.mark();
  expect((await f.install(site, site.platform, 'e-gx-1')).body).toMatchObject({ result: { accepted: true } });
  const serial = `N/${site.portalId}/system/0/Serial`;
  const gone = await f.probe.next((m) => m.topic === serial && m.text === '{"value":null}', 5000, from);
  await f.probe.next((m) => m.topic === serial && m.text.includes(site.portalId), 5000, f.probe.messages.indexOf(gone));

  expect(site.platform.version).toBe(TARGET_VERSION.platform);
  const status = (await f.status(site, vebus)).result!;
  expect(status).toMatchObject({
    version: oldVersion,
    busy: false,
    execution: { executionId: 'e-vebus-1', state: 'failed', error: { code: 'interrupted' } },
  });
  expect(f.fleet.truth.executions().find((e) => e.executionId === 'e-vebus-1')).toMatchObject({
    result: 'failed',
    error: { code: 'interrupted' },
    finalVersion: oldVersion,
  });
});
