/** Portal ids: 12 lowercase hex, deterministic from seed and salt, unique, stable prefixes. */
import { portalIdsFor } from '../../devices-sim/index.js';
import { PORTAL_ID_RE } from '../../src/protocol/index.js';

test('ids are 12 lowercase hex characters and unique', () => {
  const ids = portalIdsFor(5000, 1, 'x');
  expect(ids).toHaveLength(5000);
  expect(new Set(ids).size).toBe(5000);
  for (const id of ids) expect(id).toMatch(PORTAL_ID_RE);
});

test('same seed and salt → same ids; the first N do not depend on the count', () => {
  expect(portalIdsFor(100, 4, 'a')).toEqual(portalIdsFor(100, 4, 'a'));
  expect(portalIdsFor(300, 4, 'a').slice(0, 100)).toEqual(portalIdsFor(100, 4, 'a'));
});

test('a different seed or salt gives a disjoint fleet', () => {
  const base = new Set(portalIdsFor(1000, 1, 'a'));
  expect(portalIdsFor(1000, 2, 'a').filter((id) => base.has(id))).toEqual([]);
  expect(portalIdsFor(1000, 1, 'b').filter((id) => base.has(id))).toEqual([]);
});

test('bad counts are refused', () => {
  expect(portalIdsFor(0)).toEqual([]);
  expect(() => portalIdsFor(-1)).toThrow(RangeError);
  expect(() => portalIdsFor(1.5)).toThrow(RangeError);
});
