/**
 * Registered sites and their MQTT secrets. A secret is shown once at registration and stored only as
 * a SHA-256 hash: secrets are 32 random bytes, so a plain hash is enough (no dictionary to attack).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Keys } from './keys.js';

export interface SiteRegistration {
  portalId: string;
  name: string | null;
  registeredAt: string;
  registeredBy: string;
}

interface StoredSite extends SiteRegistration {
  secretHash: string;
}

export class SiteStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /** Registers (or re-keys) sites; returns each new secret once. */
  async register(
    sites: { portalId: string; name?: string | null }[],
    registeredBy: string,
  ): Promise<{ portalId: string; secret: string }[]> {
    const now = new Date().toISOString();
    const out: { portalId: string; secret: string }[] = [];
    const flat: string[] = [];
    for (const s of sites) {
      const secret = randomBytes(24).toString('base64url');
      const stored: StoredSite = { portalId: s.portalId, name: s.name ?? null, registeredAt: now, registeredBy, secretHash: hash(secret) };
      flat.push(s.portalId, JSON.stringify(stored));
      out.push({ portalId: s.portalId, secret });
    }
    if (flat.length) await this.redis.hset(this.keys.sites(), ...flat);
    return out;
  }

  /** Constant-time check of a site's secret. */
  async verify(portalId: string, secret: string): Promise<boolean> {
    const v = await this.redis.hget(this.keys.sites(), portalId);
    if (!v) return false;
    const stored = JSON.parse(v) as StoredSite;
    const a = Buffer.from(stored.secretHash, 'hex');
    const b = Buffer.from(hash(secret), 'hex');
    return a.length === b.length && timingSafeEqual(a, b);
  }

  async list(): Promise<SiteRegistration[]> {
    const h = await this.redis.hgetall(this.keys.sites());
    return Object.values(h).map((v) => {
      const { secretHash: _omit, ...rest } = JSON.parse(v) as StoredSite;
      return rest;
    });
  }

  async exists(portalId: string): Promise<boolean> {
    return (await this.redis.hexists(this.keys.sites(), portalId)) === 1;
  }
}

function hash(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}
