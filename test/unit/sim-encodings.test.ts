/** Site plans and the D-Bus paths each product publishes, with the right /FirmwareVersion encoding per family. */
import { planSite, FIRST_INSTANCE } from '../../devices-sim/index.js';
import { buildStamp, deviceLeaf, deviceLeaves, serialNumber } from '../../devices-sim/device-paths.js';
import { SimDevice } from '../../devices-sim/sim-device.js';
import { formatFirmwareVersion, productById } from '../../src/protocol/index.js';

const portalId = 'c0619ab1d2e3';

function device(
  service: 'platform' | 'vebus' | 'solarcharger' | 'battery',
  productId: number,
  version: string,
) {
  return new SimDevice({ portalId, service, instance: FIRST_INSTANCE[service], productId, version });
}

test('VE.Direct products publish the hex-as-decimal integer: v1.57 → 343, v4.16 → 1046', () => {
  expect(deviceLeaf(device('solarcharger', 0xa058, 'v1.57'), 'FirmwareVersion')).toBe(343);
  expect(deviceLeaf(device('battery', 0xa389, 'v4.16'), 'FirmwareVersion')).toBe(1046);
});

test('VE.Bus publishes 0x504 for v504; the GX publishes its version string', () => {
  expect(deviceLeaf(device('vebus', 0x2780, 'v504'), 'FirmwareVersion')).toBe(0x504);
  expect(deviceLeaf(device('vebus', 0x2780, 'v502'), 'FirmwareVersion')).toBe(1282);
  const gx = device('platform', 0xc00a, 'v3.70~33');
  expect(deviceLeaf(gx, 'FirmwareVersion')).toBe('v3.70~33');
  expect(deviceLeaf(gx, 'Firmware/Installed/Version')).toBe('v3.70~33');
  expect(deviceLeaf(gx, 'Firmware/Installed/Build')).toMatch(/^20\d{12}$/);
  expect(deviceLeaf(gx, 'Device/Model')).toBe('Cerbo GX');
  expect(deviceLeaf(gx, 'Firmware/State')).toBe(1000);
});

test('every product has the mandatory paths; only the platform has Firmware/*', () => {
  const mandatory = [
    'Mgmt/ProcessName',
    'Mgmt/ProcessVersion',
    'Mgmt/Connection',
    'DeviceInstance',
    'ProductId',
    'ProductName',
    'FirmwareVersion',
    'HardwareVersion',
    'Connected',
    'Serial',
    'CustomName',
  ];
  for (const d of [
    device('platform', 0xc00a, 'v3.60'),
    device('vebus', 0x2780, 'v502'),
    device('solarcharger', 0xa058, 'v1.61'),
    device('battery', 0xa381, 'v4.12'),
  ]) {
    const paths = deviceLeaves(d).map(([p]) => p);
    expect(paths).toEqual(expect.arrayContaining(mandatory));
    expect(paths.some((p) => p.startsWith('Firmware/'))).toBe(d.service === 'platform');
    expect(deviceLeaf(d, 'DeviceInstance')).toBe(d.instance);
    expect(deviceLeaf(d, 'Connection')).toBeUndefined();
    expect(deviceLeaf(d, 'Mgmt/Connection')).toBe(productById(d.product.productId)?.connection);
  }
});

test('published encodings decode back to the display version', () => {
  for (const plan of planSite(1, portalId, { vebus: 2, solarcharger: 3, battery: 2 })) {
    const d = new SimDevice(plan);
    expect(formatFirmwareVersion(d.product.family, deviceLeaf(d, 'FirmwareVersion'))).toBe(plan.version);
  }
});

test('site plans are seeded: same seed, same site; instances follow Venus OS numbering', () => {
  const a = planSite(5, portalId);
  expect(planSite(5, portalId)).toEqual(a);
  expect(a[0]).toMatchObject({ service: 'platform', instance: 0 });
  const mixed = planSite(5, portalId, { vebus: 2, solarcharger: 3, battery: 1 });
  expect(mixed.map((d) => `${d.service}/${d.instance}`)).toEqual([
    'platform/0',
    'vebus/276',
    'vebus/277',
    'solarcharger/256',
    'solarcharger/257',
    'solarcharger/258',
    'battery/512',
  ]);
  for (const d of mixed) expect(productById(d.productId)?.service).toBe(d.service);
});

test('initial versions can be forced per service or per device, and must fit the family', () => {
  const forced = planSite(1, portalId, {}, { solarcharger: 'v1.50', platform: 'v3.10' });
  expect(forced.find((d) => d.service === 'solarcharger')?.version).toBe('v1.50');
  expect(forced[0].version).toBe('v3.10');
  const byFn = planSite(1, portalId, {}, (d) => (d.service === 'vebus' ? 'v500' : undefined));
  expect(byFn.find((d) => d.service === 'vebus')?.version).toBe('v500');
  expect(() => planSite(1, portalId, {}, { vebus: 'v5.04' })).toThrow(/cannot be encoded/);
});

test('serials and build stamps are stable', () => {
  expect(serialNumber(portalId, 'vebus', 276)).toBe(serialNumber(portalId, 'vebus', 276));
  expect(serialNumber(portalId, 'vebus', 276)).toMatch(/^HQ\d{4}[A-Z0-9]{5}$/);
  expect(buildStamp('v3.70')).toBe(buildStamp('v3.70'));
});
