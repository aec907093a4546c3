/** Admission of firmware.install: duplicate first, then presence, lock, model, the device's own refusals. */
import { admitInstall, type AdmissionDevice } from '../../devices-sim/install-admission.js';
import type { InstallPlan } from '../../devices-sim/index.js';
import { productById, type InstallParams } from '../../src/protocol/index.js';

const params: InstallParams = {
  device: 'solarcharger/256',
  url: 'http://x/firmware/abc?token=t',
  sha256: 'a'.repeat(64),
  size: 10,
  version: 'v1.67',
  productIds: [0xa058],
  jobId: 'j1',
  executionId: 'e1',
};
const noFault: InstallPlan = { fault: null, notUpdatableCode: null, pace: 1 };

function device(over: Partial<AdmissionDevice> & { known?: string[] } = {}): AdmissionDevice {
  const known = new Set(over.known ?? []);
  return {
    product: productById(0xa058)!,
    online: true,
    current: null,
    execution: (id) => (known.has(id) ? {} : undefined),
    ...over,
  };
}

test('a fresh install on an idle, matching device is accepted', () => {
  expect(admitInstall(device(), params, noFault)).toEqual({ kind: 'accepted' });
});

test('a known execution is a duplicate even while busy, offline or faulty', () => {
  const d = device({ known: ['e1'], current: { executionId: 'e1' }, online: false });
  expect(admitInstall(d, params, { fault: 'wrongModel', notUpdatableCode: null, pace: 1 })).toEqual({
    kind: 'duplicate',
  });
});

test('refusals carry their codes, in order', () => {
  const code = (d: AdmissionDevice, p = params, plan = noFault) => {
    const a = admitInstall(d, p, plan);
    return a.kind === 'refused' ? a.error.code : a.kind;
  };
  expect(code(device({ online: false }))).toBe('device-offline');
  const busy = admitInstall(device({ current: { executionId: 'other' } }), params, noFault);
  expect(busy).toEqual({
    kind: 'refused',
    error: { code: 'busy', message: 'waiting for a task to finish (execution other)' },
  });
  expect(code(device(), { ...params, productIds: [0xa389] })).toBe('vbdup-123');
  expect(code(device(), params, { fault: 'wrongModel', notUpdatableCode: null, pace: 1 })).toBe('vbdup-123');
  expect(code(device(), { ...params, version: 'v504' })).toBe('bad-request');
  expect(code(device(), params, { fault: 'notUpdatable', notUpdatableCode: '1343', pace: 1 })).toBe('1343');
  expect(code(device(), params, { fault: 'slowLink', notUpdatableCode: null, pace: 1 })).toBe('accepted');
});
