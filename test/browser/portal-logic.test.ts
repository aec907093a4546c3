/** Pure logic of the portal: the launch plan (web/src/launch-plan.ts), error words, routes and formatting. */
import type { DeviceRecord, FirmwareRecord } from '../../src/protocol/index.js';
import { describeErrorCode } from '../../web/src/error-codes.js';
import { formatBytes, formatDuration, shortHash } from '../../web/src/format.js';
import { fitCount, planLaunch } from '../../web/src/launch-plan.js';
import { parseRoute } from '../../web/src/router.js';

function device(
  deviceId: string,
  productId: number | null,
  version: string | null,
  extra: Partial<DeviceRecord> = {},
): DeviceRecord {
  const [portalId, service, instance] = deviceId.split('.');
  return {
    deviceId,
    portalId,
    service: service as DeviceRecord['service'],
    instance: Number(instance),
    productId,
    productName:
      productId === 0xa058 ? 'SmartSolar MPPT 150/35' : productId === 0xa389 ? 'SmartShunt 500A/50mV' : null,
    customName: null,
    version,
    online: true,
    lastSeenAt: '2026-01-01T00:00:00.000Z',
    lastUpdate: null,
    ...extra,
  };
}

const image: FirmwareRecord = {
  id: 'a'.repeat(64),
  sha256: 'a'.repeat(64),
  size: 1024,
  version: 'v1.67',
  productIds: [0xa058],
  name: 'SmartSolar MPPT 150/35',
  notes: '',
  uploadedAt: '2026-01-01T00:00:00.000Z',
  uploadedBy: 'operator-1',
};

const fleet = new Map(
  [
    device('c0619ab1d2e3.solarcharger.258', 0xa058, 'v1.57'),
    device('c0619ab1d2e3.solarcharger.259', 0xa058, 'v1.67', { online: false }),
    device('c0619ab1d2e3.solarcharger.260', 0xa058, 'v1.70'),
    device('c0619ab1d2e3.battery.512', 0xa389, 'v4.10'),
    device('c0619ab1d2e3.battery.513', null, null),
  ].map((d) => [d.deviceId, d]),
);

test('splits the selection into fits (with notes) and misfits (with reasons)', () => {
  const plan = planLaunch([...fleet.keys(), 'c0619ab1d2e3.vebus.276'], (id) => fleet.get(id), image);
  expect(plan.fits.map((f) => [f.device.deviceId, f.notes])).toEqual([
    ['c0619ab1d2e3.solarcharger.258', []],
    [
      'c0619ab1d2e3.solarcharger.259',
      ['offline now: it will wait in preflight until its timeout', 'already runs v1.67'],
    ],
    ['c0619ab1d2e3.solarcharger.260', ['downgrade from v1.70']],
  ]);
  const reasons = Object.fromEntries(plan.misfits.map((m) => [m.deviceId, m.reason]));
  expect(reasons['c0619ab1d2e3.battery.512']).toBe(
    'SmartShunt 500A/50mV (0xA389); SmartSolar MPPT 150/35 v1.67 fits only 0xA058',
  );
  expect(reasons['c0619ab1d2e3.battery.513']).toMatch(/^product unknown/);
  expect(reasons['c0619ab1d2e3.vebus.276']).toBe('no longer in the inventory');
  expect(fitCount(fleet.keys(), (id) => fleet.get(id), image)).toBe(3);
});

test('error codes read as words, unknown codes as themselves', () => {
  expect(describeErrorCode('vbdup-123')).toBe('the firmware does not match the model');
  expect(describeErrorCode('timeout-rebooting')).toBe('the rebooting phase took too long');
  expect(describeErrorCode('1344')).toMatch(/blacklisted/);
  expect(describeErrorCode('something-new')).toBe('something-new');
});

test('hash routes', () => {
  expect(parseRoute('')).toEqual({ name: 'fleet' });
  expect(parseRoute('#/jobs/')).toEqual({ name: 'jobs' });
  expect(parseRoute('#/jobs/jmabc12345')).toEqual({ name: 'job', id: 'jmabc12345' });
  expect(parseRoute('#/jobs/../x')).toEqual({ name: 'not-found', path: '/jobs/../x' });
});

test('durations and sizes', () => {
  expect(formatDuration(936)).toBe('0.9 s');
  expect(formatDuration(9_999)).toBe('9.9 s');
  expect(formatDuration(65_000)).toBe('1 min 05 s');
  expect(formatDuration(3_700_000)).toBe('1 h 01 min');
  expect(formatBytes(131_072)).toBe('128 KiB');
  expect(formatBytes(300_000)).toBe('293 KiB');
  expect(shortHash('8141ae5f8649'.padEnd(64, '0'))).toBe('8141ae5f8649…');
});
