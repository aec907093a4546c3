/**
 * Which jobs use a firmware image, and deleting an image only while none does. A launch reserves
 * the image (job id in the image's usage set) before it checks that the image still exists; a
 * delete drops the reservations of finished jobs, then removes the metadata in one Lua step only if
 * no reservation is left. So a launch and a delete racing end either with the job (and the image
 * kept) or with the image gone and the launch answering 404 — never a job without its image.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ConflictError, NotFoundError } from '../errors.js';
import type { FirmwareRecord } from '../protocol/index.js';
import type { FirmwareStore } from '../store/firmware-store.js';
import type { JobStore } from '../store/job-store.js';
import type { Keys } from '../store/keys.js';

/** A reservation without its job after this long is left over from a launch that died half-way. */
export const ORPHAN_RESERVATION_MS = 60_000;

/**
 * KEYS: firmware hash, the image's usage zset. ARGV: image id.
 * Returns 'missing', 'in-use' or 'deleted'.
 */
const DELETE_IF_UNUSED = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 'missing' end
if redis.call('ZCARD', KEYS[2]) > 0 then return 'in-use' end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 'deleted'
`;

type ScriptRedis = Redis & { ffDeleteFirmwareIfUnused(...args: string[]): Promise<string> };

export class FirmwareUsage {
  private readonly redis: ScriptRedis;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly jobs: JobStore,
    private readonly firmware: FirmwareStore,
    private readonly logger: Logger,
  ) {
    const r = redis as ScriptRedis;
    if (typeof r.ffDeleteFirmwareIfUnused !== 'function') {
      redis.defineCommand('ffDeleteFirmwareIfUnused', { numberOfKeys: 2, lua: DELETE_IF_UNUSED });
    }
    this.redis = r;
  }

  /** Reserves the image for a job about to be created; null (reservation dropped) when the image is gone. */
  async reserve(firmwareId: string, jobId: string, now = Date.now()): Promise<FirmwareRecord | null> {
    await this.redis.zadd(this.keys.firmwareJobs(firmwareId), now, jobId);
    const image = await this.firmware.get(firmwareId);
    if (!image) await this.release(firmwareId, jobId);
    return image;
  }

  /** Drops a reservation (the launch failed after reserving). */
  async release(firmwareId: string, jobId: string): Promise<void> {
    await this.redis.zrem(this.keys.firmwareJobs(firmwareId), jobId);
  }

  /**
   * Deletes the image (metadata, then bytes): 404 when unknown, 409 `firmware_in_use` with the job
   * ids while a queued or running job uses it.
   */
  async delete(firmwareId: string, by: string, now = Date.now()): Promise<FirmwareRecord> {
    const image = await this.firmware.get(firmwareId);
    if (!image) throw new NotFoundError('firmware', firmwareId);
    const key = this.keys.firmwareJobs(firmwareId);
    const active: string[] = [];
    for (const [jobId, at] of pairs(await this.redis.zrange(key, '0', '-1', 'WITHSCORES'))) {
      const job = await this.jobs.get(jobId);
      const finished = job
        ? job.state === 'completed' || job.state === 'aborted'
        : now - at > ORPHAN_RESERVATION_MS;
      if (finished) await this.redis.zrem(key, jobId);
      else active.push(jobId);
    }
    const inUse = () =>
      new ConflictError(
        'firmware_in_use',
        `firmware ${firmwareId} is used by ${active.length || 'a'} job(s) that have not finished`,
        {
          jobs: active.slice(0, 100),
        },
      );
    if (active.length) throw inUse();
    const outcome = await this.redis.ffDeleteFirmwareIfUnused(this.keys.firmware(), key, firmwareId);
    if (outcome === 'missing') throw new NotFoundError('firmware', firmwareId);
    // A launch reserved it between our check and the delete: it wins.
    if (outcome === 'in-use') throw inUse();
    await this.firmware.deleteFile(image.sha256);
    this.logger.info({ firmwareId, by }, 'firmware deleted');
    return image;
  }
}

function pairs(flat: string[]): [string, number][] {
  const out: [string, number][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i], Number(flat[i + 1])]);
  return out;
}
