/**
 * One full-republish request per site per interval across every api instance of a deployment.
 *
 * Each api instance runs a fleet monitor, and with several of them (a broker cluster, or several API
 * replicas on one external broker) every monitor would ask every site it sees for a full republish. A
 * republish re-announces the site's Serial, which the other monitors take as a reason to ask again once
 * their own interval has passed: under load, when republishes take longer than that interval, the
 * monitors kept each other's sites republishing forever. A Redis `SET NX PX` decides which instance
 * asks; the others still read the republish and record the inventory from it.
 */
import type { Redis } from 'ioredis';

/** Resolves true when this instance should send the request for `portalId` now. */
export type InventoryClaim = (portalId: string) => Promise<boolean>;

/** A claim held for `intervalMs` per site under `<prefix>:fleet:inventory-claim:`. */
export function redisInventoryClaim(redis: Redis, prefix: string, intervalMs: number): InventoryClaim {
  return async (portalId) => (await redis.set(`${prefix}:fleet:inventory-claim:${portalId}`, '1', 'PX', intervalMs, 'NX')) === 'OK';
}
