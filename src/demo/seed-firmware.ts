/**
 * Firmware images for the demo, tests and benchmarks: deterministic bytes per (name, version), so
 * the same image always has the same SHA-256 and seeding twice stores nothing twice.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { ConflictError } from '../errors.js';
import type { FirmwareRecord } from '../protocol/index.js';
import type { FirmwareMeta, FirmwareStore } from '../store/firmware-store.js';

export interface ImageSpec extends FirmwareMeta {
  sizeBytes: number;
}

/** Images that fit every simulated product family, newer than what the simulator's devices run. */
export const DEMO_IMAGES: readonly ImageSpec[] = [
  { name: 'Venus OS', version: 'v3.72', productIds: [0xc00a, 0xc002, 0xc001], notes: 'GX release', sizeBytes: 512 * 1024 },
  { name: 'Venus OS beta', version: 'v3.80~12', productIds: [0xc00a, 0xc002], notes: 'GX beta', sizeBytes: 512 * 1024 },
  { name: 'MultiPlus-II 12/3000/120-50', version: 'v510', productIds: [0x2780], notes: 'VE.Bus firmware', sizeBytes: 256 * 1024 },
  { name: 'SmartSolar MPPT 150/35', version: 'v1.67', productIds: [0xa058], notes: 'VE.Direct firmware', sizeBytes: 128 * 1024 },
  { name: 'SmartShunt / BMV-712', version: 'v4.19', productIds: [0xa389, 0xa38a, 0xa38b, 0xa381], notes: 'VE.Direct firmware', sizeBytes: 128 * 1024 },
];

/** Deterministic pseudo-random bytes (SHA-256 in counter mode). */
export function imageBytes(name: string, version: string, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  const seed = `${name}|${version}`;
  for (let off = 0, i = 0; off < size; off += 32, i++) {
    createHash('sha256').update(`${seed}|${i}`).digest().copy(out, off, 0, Math.min(32, size - off));
  }
  return out;
}

/** Stores the images (skipping ones already stored) and returns their records. */
export async function seedFirmware(store: FirmwareStore, specs: readonly ImageSpec[] = DEMO_IMAGES, by = 'seed'): Promise<FirmwareRecord[]> {
  const out: FirmwareRecord[] = [];
  for (const spec of specs) {
    const bytes = imageBytes(spec.name, spec.version, spec.sizeBytes);
    const { sizeBytes: _size, ...meta } = spec;
    try {
      out.push(await store.put(Readable.from([bytes]), meta, by));
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
      const existing = await store.get((err.details as { id: string }).id);
      if (existing) out.push(existing);
    }
  }
  return out;
}
