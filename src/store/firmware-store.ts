/**
 * Firmware images: bytes on disk content-addressed by SHA-256, metadata in Redis.
 * Uploads stream to a temporary file while hashing; only a complete, verified file is renamed into
 * place, so a failed upload never leaves a half-stored image.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Redis } from 'ioredis';
import { ConflictError, PayloadTooLargeError } from '../errors.js';
import type { FirmwareRecord } from '../protocol/index.js';
import { ImageCache, type ImageLookup } from './image-cache.js';
import type { Keys } from './keys.js';

export type FirmwareMeta = Pick<FirmwareRecord, 'version' | 'productIds' | 'name' | 'notes'>;

/** Kept images are looked at on disk again after this long (another process may have deleted one). */
const CACHE_RECHECK_MS = 5000;
/** Largest image kept in memory whatever `FIRMWARE_CACHE_BYTES` says. */
const MAX_CACHED_IMAGE_BYTES = 1024 ** 3;

export class FirmwareStore {
  private readonly cache: ImageCache;

  /** `cacheBytes`: memory for small images served to devices (0: every download reads the file). */
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly dir: string,
    private readonly maxBytes: number,
    cacheBytes: number,
  ) {
    this.cache = new ImageCache(
      { size: (sha256) => this.fileSize(sha256), read: (sha256) => readFile(this.filePath(sha256)) },
      // An image may take a quarter of the room at most, so one large image cannot push out all the
      // others, and never more than readFile reads into one buffer (2 GiB).
      { maxImageBytes: Math.min(Math.floor(cacheBytes / 4), MAX_CACHED_IMAGE_BYTES), maxTotalBytes: cacheBytes, recheckMs: CACHE_RECHECK_MS },
    );
  }

  /** Streams `body` into the store; rejects oversize uploads and duplicates of a stored image. */
  async put(body: Readable, meta: FirmwareMeta, uploadedBy: string): Promise<FirmwareRecord> {
    await mkdir(this.dir, { recursive: true });
    const tmp = path.join(this.dir, `.upload-${randomBytes(8).toString('hex')}`);
    const hash = createHash('sha256');
    let size = 0;
    const max = this.maxBytes;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        if (size > max) return cb(new PayloadTooLargeError(`firmware images are limited to ${max} bytes`));
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(body, meter, createWriteStream(tmp));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    const sha256 = hash.digest('hex');
    const record: FirmwareRecord = { id: sha256, sha256, size, ...meta, uploadedAt: new Date().toISOString(), uploadedBy };
    const created = await this.redis.hsetnx(this.keys.firmware(), sha256, JSON.stringify(record));
    if (created === 0) {
      await rm(tmp, { force: true });
      throw new ConflictError('firmware_exists', `an image with SHA-256 ${sha256} is already stored`, { id: sha256 });
    }
    try {
      await rename(tmp, this.filePath(sha256));
    } catch (err) {
      await this.redis.hdel(this.keys.firmware(), sha256);
      await rm(tmp, { force: true });
      throw err;
    }
    return record;
  }

  async get(id: string): Promise<FirmwareRecord | null> {
    const v = await this.redis.hget(this.keys.firmware(), id);
    return v ? (JSON.parse(v) as FirmwareRecord) : null;
  }

  async list(): Promise<FirmwareRecord[]> {
    const h = await this.redis.hgetall(this.keys.firmware());
    return Object.values(h)
      .map((v) => JSON.parse(v) as FirmwareRecord)
      .sort((a, b) => b.uploadedAt.localeCompare(a.uploadedAt));
  }

  filePath(sha256: string): string {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error('not a sha256');
    return path.join(this.dir, sha256);
  }

  /** Removes an image's bytes (after its metadata is gone; see jobs/firmware-usage.ts). */
  async deleteFile(sha256: string): Promise<void> {
    await rm(this.filePath(sha256), { force: true });
    this.cache.evict(sha256);
  }

  /** For a download: the image's size and, for a small image, its bytes from memory; null when missing. */
  image(sha256: string): Promise<ImageLookup | null> {
    return this.cache.lookup(sha256);
  }

  /** Size on disk, or null when the file is missing. */
  async fileSize(sha256: string): Promise<number | null> {
    try {
      return (await stat(this.filePath(sha256))).size;
    } catch {
      return null;
    }
  }
}
