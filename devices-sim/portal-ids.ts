/**
 * Deterministic portal ids: 12 lowercase hex characters, like a GX derives from its eth0 MAC.
 * The salt lets parallel tests (sharing one broker) get fleets that never collide.
 */
import { isPortalId } from '../src/protocol/index.js';
import { rngFor } from './prng.js';

/**
 * The portal ids of a fleet of `count` sites for `seed` and `salt`, in site order.
 * Ids are unique within the list; the first N ids do not depend on `count`.
 */
export function portalIdsFor(count: number, seed = 1, salt = ''): string[] {
  if (!Number.isInteger(count) || count < 0)
    throw new RangeError(`count must be a non-negative integer, got ${count}`);
  const ids: string[] = [];
  const seen = new Set<string>();
  for (let index = 0; index < count; index++) {
    // A collision in 48 bits is unlikely but not impossible at 10⁵ sites: redraw with an attempt counter.
    for (let attempt = 0; ; attempt++) {
      const id = portalIdAt(seed, salt, index, attempt);
      if (!seen.has(id)) {
        seen.add(id);
        ids.push(id);
        break;
      }
    }
  }
  return ids;
}

function portalIdAt(seed: number, salt: string, index: number, attempt: number): string {
  const rng = rngFor('portal', seed, salt, index, attempt);
  const high = rng.uint32() & 0xffff;
  const low = rng.uint32();
  const id = high.toString(16).padStart(4, '0') + low.toString(16).padStart(8, '0');
  if (!isPortalId(id)) throw new Error(`generated an invalid portal id ${id}`);
  return id;
}
