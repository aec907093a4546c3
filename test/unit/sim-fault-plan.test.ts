/** Fault planning: deterministic per (seed, device, execution), rates respected, only where it applies. */
import { FAULT_KINDS, faultApplies, planInstall, plannedFault } from '../../devices-sim/index.js';
import { installPace, validateFaultRates, validateTimingSpread } from '../../devices-sim/fault-plan.js';

const solar = 'c0619ab1d2e3.solarcharger.256';
const vebus = 'c0619ab1d2e3.vebus.276';

test('the same seed, device and execution always give the same fault', () => {
  const rates = { checksumMismatch: 0.2, neverReturns: 0.2, slowLink: 0.2 };
  for (let i = 0; i < 50; i++) {
    const a = planInstall(7, solar, `exec-${i}`, rates);
    const b = planInstall(7, solar, `exec-${i}`, { ...rates });
    expect(b).toEqual(a);
  }
});

test('different seeds or executions give different draws', () => {
  const rates = { checksumMismatch: 0.5 };
  const bySeed = new Set(Array.from({ length: 40 }, (_, s) => plannedFault(s, solar, 'e', rates)));
  const byExec = new Set(Array.from({ length: 40 }, (_, i) => plannedFault(1, solar, `e${i}`, rates)));
  expect(bySeed).toEqual(new Set(['checksumMismatch', null]));
  expect(byExec).toEqual(new Set(['checksumMismatch', null]));
});

test('no rates, no faults; rate 1 always that fault', () => {
  for (let i = 0; i < 100; i++) {
    expect(plannedFault(1, solar, `e${i}`, {})).toBeNull();
    expect(plannedFault(1, solar, `e${i}`, { dropMidDownload: 1 })).toBe('dropMidDownload');
  }
});

test('observed frequencies follow the rates', () => {
  const rates = { checksumMismatch: 0.1, neverReturns: 0.3 };
  const counts = new Map<string | null, number>();
  const n = 20_000;
  for (let i = 0; i < n; i++) {
    const f = plannedFault(3, solar, `e${i}`, rates);
    counts.set(f, (counts.get(f) ?? 0) + 1);
  }
  expect((counts.get('checksumMismatch') ?? 0) / n).toBeCloseTo(0.1, 1);
  expect((counts.get('neverReturns') ?? 0) / n).toBeCloseTo(0.3, 1);
  expect((counts.get(null) ?? 0) / n).toBeCloseTo(0.6, 1);
});

test('VE.Bus-only faults never hit other products', () => {
  expect(faultApplies('restoreFailed', 'vebus')).toBe(true);
  expect(faultApplies('restoreFailed', 'solarcharger')).toBe(false);
  expect(faultApplies('noResponse', 'platform')).toBe(false);
  expect(faultApplies('neverReturns', 'platform')).toBe(true);
  for (let i = 0; i < 50; i++) {
    expect(plannedFault(1, solar, `e${i}`, { restoreFailed: 1 })).toBeNull();
    expect(plannedFault(1, vebus, `e${i}`, { restoreFailed: 1 })).toBe('restoreFailed');
  }
});

test('notUpdatable carries one of VRM codes 1341..1344, deterministically', () => {
  const codes = new Set<string | null>();
  for (let i = 0; i < 200; i++) {
    const plan = planInstall(1, solar, `e${i}`, { notUpdatable: 1 });
    expect(plan.fault).toBe('notUpdatable');
    expect(planInstall(1, solar, `e${i}`, { notUpdatable: 1 }).notUpdatableCode).toBe(plan.notUpdatableCode);
    codes.add(plan.notUpdatableCode);
  }
  expect([...codes].sort()).toEqual(['1341', '1342', '1343', '1344']);
  expect(planInstall(1, solar, 'e', { checksumMismatch: 1 }).notUpdatableCode).toBeNull();
});

test('rates are validated with a message naming the entry', () => {
  expect(() => validateFaultRates({ bogus: 0.1 } as never)).toThrow(/unknown fault kind 'bogus'/);
  expect(() => validateFaultRates({ slowLink: 1.5 })).toThrow(/slowLink=1.5/);
  expect(() => validateFaultRates({ slowLink: 0.6, neverReturns: 0.6 })).toThrow(/add up to 1.2/);
  expect(validateFaultRates(Object.fromEntries(FAULT_KINDS.map((k) => [k, 0.1])))).toBeDefined();
  expect(() => planInstall(1, 'not-a-device', 'e', {})).toThrow(/not a device id/);
});

test("an install's pace: 1 without a spread; with one, seeded per install, within 1 ± spread and spread across it", () => {
  const paces = Array.from({ length: 2000 }, (_, i) => planInstall(1, solar, `e${i}`, {}, 0.2).pace);
  for (const p of paces) expect(p).toBeGreaterThanOrEqual(0.8);
  for (const p of paces) expect(p).toBeLessThanOrEqual(1.2);
  // Uniform: each fifth of the range gets about a fifth of the installs; the mean stays nominal.
  for (let k = 0; k < 5; k++) {
    const inBand = paces.filter((p) => p >= 0.8 + 0.08 * k && p < 0.8 + 0.08 * (k + 1)).length;
    expect(inBand / paces.length).toBeCloseTo(0.2, 1);
  }
  expect(paces.reduce((a, b) => a + b, 0) / paces.length).toBeCloseTo(1, 1);
  expect(planInstall(1, solar, 'e7', {}, 0.2).pace).toBe(paces[7]);
  expect(installPace(2, solar, 'e7', 0.2)).not.toBe(paces[7]);
  expect(planInstall(1, solar, 'e7', {}).pace).toBe(1);
  expect(installPace(1, solar, 'e7', 0)).toBe(1);
});

test('the spread does not change which installs get which fault', () => {
  const rates = { checksumMismatch: 0.3, slowLink: 0.3 };
  for (let i = 0; i < 200; i++) {
    expect(planInstall(5, solar, `e${i}`, rates, 0.5).fault).toBe(
      planInstall(5, solar, `e${i}`, rates).fault,
    );
  }
});

test('a timing spread must be at least 0 and below 1', () => {
  expect(validateTimingSpread(0)).toBe(0);
  expect(validateTimingSpread(0.99)).toBe(0.99);
  for (const bad of [1, -0.01, Number.NaN])
    expect(() => validateTimingSpread(bad)).toThrow(/timingSpread must be >= 0 and < 1/);
});
