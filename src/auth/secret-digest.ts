/**
 * Secrets compared in constant time: each side is reduced to its SHA-256 first, so secrets of any
 * length compare (timingSafeEqual needs equal lengths) without the comparison's time telling how
 * much of a guess was right. Used for operator tokens, the MQTT service password and the broker
 * auth hook's token.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** The SHA-256 of `secret`, to keep instead of the secret and to compare with {@link matchesDigest}. */
export function secretDigest(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

/** Whether `secret` is the one `digest` was made from, in constant time. */
export function matchesDigest(digest: Buffer, secret: string): boolean {
  return timingSafeEqual(digest, secretDigest(secret));
}
