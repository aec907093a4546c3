/**
 * Seeded hashing and pseudo-random numbers. Everything the simulator decides "at random" that a
 * test may want to predict (portal ids, products, versions, faults) is drawn from here, keyed by
 * the seed and by what is being decided, so the answer does not depend on timing or call order.
 */

/** A 32-bit hash of a string (FNV-1a, then the murmur3 finaliser so nearby keys spread well). */
export function hash32(text: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A small deterministic random source. */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [min, max] (both inclusive). */
  int(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  /** Picks by relative weight: `[[value, weight], …]`. */
  weighted<T>(items: readonly (readonly [T, number])[]): T;
  /** A 32-bit unsigned integer. */
  uint32(): number;
}

/** mulberry32: tiny, fast and good enough for simulation choices (not for anything secret). */
export function createRng(seed: number): Rng {
  let state = seed >>> 0;
  const uint32 = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  const next = (): number => uint32() / 4294967296;
  return {
    next,
    uint32,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    pick: (items) => items[Math.floor(next() * items.length)],
    weighted: (items) => {
      const total = items.reduce((sum, [, w]) => sum + w, 0);
      let u = next() * total;
      for (const [value, weight] of items) {
        u -= weight;
        if (u < 0) return value;
      }
      return items[items.length - 1][0];
    },
  };
}

/**
 * A random source for one decision, keyed by its parts: `rngFor('fault', seed, deviceId, executionId)`.
 * The same parts always give the same sequence.
 */
export function rngFor(...parts: readonly (string | number)[]): Rng {
  return createRng(hash32(parts.join('\u001f')));
}
