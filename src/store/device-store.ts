/** The fleet inventory in Redis: one record per device, an index per site, and update history. */
import type { Redis } from 'ioredis';
import type { DeviceRecord, HistoryEntry } from '../protocol/index.js';
import type { Keys } from './keys.js';

/** How many history entries a device keeps. */
export const HISTORY_LIMIT = 100;

export class DeviceStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  async upsert(records: DeviceRecord[]): Promise<void> {
    if (records.length === 0) return;
    const multi = this.redis.multi();
    const flat: string[] = [];
    for (const r of records) {
      flat.push(r.deviceId, JSON.stringify(r));
      multi.sadd(this.keys.siteDevices(r.portalId), r.deviceId);
    }
    multi.hset(this.keys.devices(), ...flat);
    await multi.exec();
  }

  async get(deviceId: string): Promise<DeviceRecord | null> {
    const v = await this.redis.hget(this.keys.devices(), deviceId);
    return v ? (JSON.parse(v) as DeviceRecord) : null;
  }

  async getMany(deviceIds: string[]): Promise<(DeviceRecord | null)[]> {
    if (deviceIds.length === 0) return [];
    const out: (DeviceRecord | null)[] = [];
    for (let i = 0; i < deviceIds.length; i += 1000) {
      const vals = await this.redis.hmget(this.keys.devices(), ...deviceIds.slice(i, i + 1000));
      for (const v of vals) out.push(v ? (JSON.parse(v) as DeviceRecord) : null);
    }
    return out;
  }

  async list(): Promise<DeviceRecord[]> {
    const h = await this.redis.hgetall(this.keys.devices());
    return Object.values(h)
      .map((v) => JSON.parse(v) as DeviceRecord)
      .sort((a, b) => a.deviceId.localeCompare(b.deviceId));
  }

  /** Every record, in batches of about `count` (HSCAN: never one huge reply, whatever the fleet size). */
  async *scan(count = 1000): AsyncGenerator<DeviceRecord[]> {
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(this.keys.devices(), cursor, 'COUNT', count);
      cursor = next;
      const batch: DeviceRecord[] = [];
      for (let i = 1; i < flat.length; i += 2) batch.push(JSON.parse(flat[i]) as DeviceRecord);
      if (batch.length) yield batch;
    } while (cursor !== '0');
  }

  async siteDeviceIds(portalId: string): Promise<string[]> {
    return this.redis.smembers(this.keys.siteDevices(portalId));
  }

  async addHistory(deviceId: string, entry: HistoryEntry): Promise<void> {
    const key = this.keys.deviceHistory(deviceId);
    await this.redis.multi().lpush(key, JSON.stringify(entry)).ltrim(key, 0, HISTORY_LIMIT - 1).exec();
  }

  /** Newest first. */
  async history(deviceId: string): Promise<HistoryEntry[]> {
    const raw = await this.redis.lrange(this.keys.deviceHistory(deviceId), 0, HISTORY_LIMIT - 1);
    return raw.map((r) => JSON.parse(r) as HistoryEntry);
  }
}
