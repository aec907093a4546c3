/**
 * Key listing and clean-up on the shared test Redis. SCAN is iterated to the end: one page never
 * proves a key is absent, because the test database holds other suites' keys too.
 */
import type { Redis } from 'ioredis';

/** Every key matching `pattern`, over all SCAN pages. */
export async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    found.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return found;
}

/** Deletes every key matching `pattern`. */
export async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  const keys = await scanKeys(redis, pattern);
  for (let i = 0; i < keys.length; i += 1000) await redis.del(...keys.slice(i, i + 1000));
}
