import fc from 'fast-check';
import {
  compareVersions,
  encodeFirmwareVersion,
  filterWithin,
  formatDeviceId,
  formatFirmwareVersion,
  parseDeviceId,
  parseDeviceTopic,
  parseFleetflashTopic,
  parseRpcOut,
  parseRpcRequest,
  topicMatches,
} from '../../src/protocol/index.js';

describe('firmware versions (real Victron encodings)', () => {
  test.each([
    ['vedirect', 343, 'v1.57'],
    ['vedirect', 1046, 'v4.16'],
    ['vedirect', 0x015703, 'v1.57~03'],
    ['vedirect', 0x0157ff, 'v1.57'],
    ['vedirect', 0x015700, 'v1.57'],
    ['vebus', 1284, 'v504'],
    ['gx', 'v3.70~33', 'v3.70~33'],
  ] as const)('%s %p → %s', (family, raw, shown) => {
    expect(formatFirmwareVersion(family, raw)).toBe(shown);
  });

  test('unknown and malformed values', () => {
    expect(formatFirmwareVersion('vedirect', 0xffffff)).toBeNull();
    expect(formatFirmwareVersion('vedirect', 'v1.57')).toBeNull();
    expect(formatFirmwareVersion('gx', 'banana')).toBeNull();
  });

  test.each([
    ['vedirect', 'v1.57', 0x157],
    ['vedirect', 'v4.16', 0x416],
    ['vedirect', 'v1.57~03', 0x015703],
    ['vebus', 'v504', 0x504],
    ['gx', 'v3.70~33', 'v3.70~33'],
  ] as const)('encode %s %s', (family, shown, raw) => {
    expect(encodeFirmwareVersion(family, shown)).toBe(raw);
    expect(formatFirmwareVersion(family, raw)).toBe(shown);
  });

  test('ordering: betas before releases, numeric segments', () => {
    const sorted = ['v3.70', 'v3.60', 'v3.70~33', 'v3.71~1', 'v3.70~4', 'v3.10'].sort(compareVersions);
    expect(sorted).toEqual(['v3.10', 'v3.60', 'v3.70~4', 'v3.70~33', 'v3.70', 'v3.71~1']);
    expect(compareVersions('v504', 'v510')).toBeLessThan(0);
    expect(compareVersions('v1.61', 'v1.61')).toBe(0);
    expect(() => compareVersions('1.61', 'v1.61')).toThrow();
  });
});

describe('ids and topics', () => {
  test('device ids round-trip and reject junk', () => {
    const a = { portalId: 'c0619ab1d2e3', service: 'solarcharger' as const, instance: 258 };
    expect(parseDeviceId(formatDeviceId(a))).toEqual(a);
    for (const bad of ['C0619AB1D2E3.solarcharger.258', 'c0619ab1d2e3.toaster.1', 'c0619ab1d2e3.vebus.999999', 'x', 42]) {
      expect(parseDeviceId(bad)).toBeNull();
    }
  });

  test('device topics parse; wildcards and bad portal ids do not', () => {
    expect(parseDeviceTopic('N/c0619ab1d2e3/system/0/Serial')).toEqual({ kind: 'N', portalId: 'c0619ab1d2e3', path: ['system', '0', 'Serial'] });
    expect(parseDeviceTopic('P/c0619ab1d2e3/out/abc-1')).toEqual({ kind: 'P', portalId: 'c0619ab1d2e3', direction: 'out', rpcId: 'abc-1' });
    expect(parseDeviceTopic('P/c0619ab1d2e3/sideways/abc')).toBeNull();
    expect(parseDeviceTopic('N/+/system/0/Serial')).toBeNull();
    expect(parseFleetflashTopic('fleetflash/jobs/jabc/devices/c0619ab1d2e3.vebus.276')).toEqual({ kind: 'job-device', jobId: 'jabc', deviceId: 'c0619ab1d2e3.vebus.276' });
    expect(parseFleetflashTopic('fleetflash/jobs/jabc/other')).toBeNull();
  });

  test('topic filters match per MQTT 4.7', () => {
    expect(topicMatches('N/+/system/0/Serial', 'N/c0619ab1d2e3/system/0/Serial')).toBe(true);
    expect(topicMatches('fleetflash/#', 'fleetflash')).toBe(true);
    expect(topicMatches('#', '$SYS/broker')).toBe(false);
    expect(topicMatches('a/+', 'a/b/c')).toBe(false);
  });

  test('topic matching agrees with a level-split reference on any filter and topic', () => {
    const reference = (filter: string, topic: string): boolean => {
      if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
      const f = filter.split('/');
      const t = topic.split('/');
      for (let i = 0; i < f.length; i++) {
        if (f[i] === '#') return true;
        if (i >= t.length) return false;
        if (f[i] !== '+' && f[i] !== t[i]) return false;
      }
      return f.length === t.length;
    };
    const path = (levels: string[]) => fc.array(fc.constantFrom(...levels), { minLength: 1, maxLength: 5 }).map((l) => l.join('/'));
    fc.assert(
      fc.property(path(['a', 'b', 'ab', '', '+', '#', '$x']), path(['a', 'b', 'ab', '', '$x', 'N']), (filter, topic) => {
        expect(topicMatches(filter, topic)).toBe(reference(filter, topic));
      }),
      { numRuns: 5000 },
    );
  });

  test('a filter is within an allowed filter only if every topic it matches is', () => {
    expect(filterWithin('N/abc/#', 'N/abc/#')).toBe(true);
    expect(filterWithin('N/abc/system/+/Serial', 'N/abc/#')).toBe(true);
    expect(filterWithin('N/+/system/0/Serial', 'N/abc/#')).toBe(false);
    expect(filterWithin('#', 'N/abc/#')).toBe(false);
    expect(filterWithin('fleetflash/jobs/j1/#', 'fleetflash/jobs/+/#')).toBe(true);
  });
});

describe('RPC payload validation', () => {
  const install = {
    method: 'firmware.install',
    params: {
      device: 'vebus/276',
      url: 'http://127.0.0.1:3000/firmware/x',
      sha256: 'a'.repeat(64),
      size: 10,
      version: 'v510',
      productIds: [0x2780],
      jobId: 'jabc12345',
      executionId: 'jabc12345.c0619ab1d2e3.vebus.276',
    },
  };
  test('accepts a valid install and status request', () => {
    expect(parseRpcRequest(install)).toMatchObject({ method: 'firmware.install' });
    expect(parseRpcRequest({ method: 'firmware.status', params: { device: 'platform/0' } })).toMatchObject({ method: 'firmware.status' });
  });
  test.each([
    ['no method', { params: {} }],
    ['unknown method', { method: 'firmware.brick', params: { device: 'vebus/276' } }],
    ['bad sha', { ...install, params: { ...install.params, sha256: 'zz' } }],
    ['bad url', { ...install, params: { ...install.params, url: 'file:///etc/passwd' } }],
    ['bad device', { ...install, params: { ...install.params, device: '../../x' } }],
    ['not an object', 'hello'],
  ])('refuses %s', (_n, body) => {
    expect(parseRpcRequest(body)).toHaveProperty('invalid');
  });
  test('out messages', () => {
    expect(parseRpcOut({ result: { accepted: true } })).toEqual({ kind: 'result', result: { accepted: true } });
    expect(parseRpcOut({ event: 'progress', executionId: 'e1', phase: 'downloading', progress: 40 })).toMatchObject({ kind: 'progress' });
    expect(parseRpcOut({ event: 'progress', executionId: 'e1', phase: 'downloading', progress: 400 })).toBeNull();
    expect(parseRpcOut({ error: { code: 1 } })).toBeNull();
    expect(parseRpcOut(null)).toBeNull();
  });
});
