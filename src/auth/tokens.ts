/**
 * Signed short-lived tokens (JWT, HS256 via jose): MQTT credentials for browsers and per-execution
 * firmware download tokens bound to one image.
 */
import { SignJWT, jwtVerify } from 'jose';
import type { OperatorRole } from '../config.js';

const ISSUER = 'fleetflash';

export interface BrowserClaims {
  subject: string;
  role: OperatorRole;
  /** Job ids the token may watch, or '*' for all. */
  jobs: '*' | string[];
  expiresAt: number;
}

export interface DownloadClaims {
  sha256: string;
  executionId: string;
  expiresAt: number;
}

export class TokenSigner {
  private readonly key: Uint8Array;

  constructor(secret: string) {
    this.key = new TextEncoder().encode(secret);
  }

  async browserToken(subject: string, role: OperatorRole, jobs: '*' | string[], ttlMs: number): Promise<{ token: string; expiresAt: number }> {
    const expiresAt = Math.floor((Date.now() + ttlMs) / 1000) * 1000;
    const token = await new SignJWT({ role, jobs })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(ISSUER)
      .setAudience('mqtt')
      .setSubject(subject)
      .setIssuedAt()
      .setExpirationTime(expiresAt / 1000)
      .sign(this.key);
    return { token, expiresAt };
  }

  /** Null for expired, tampered or foreign tokens. */
  async verifyBrowserToken(token: string): Promise<BrowserClaims | null> {
    try {
      const { payload } = await jwtVerify(token, this.key, { issuer: ISSUER, audience: 'mqtt', algorithms: ['HS256'] });
      const role = payload.role;
      const jobs = payload.jobs;
      if ((role !== 'viewer' && role !== 'operator') || typeof payload.sub !== 'string' || !payload.exp) return null;
      if (jobs !== '*' && !(Array.isArray(jobs) && jobs.every((j) => typeof j === 'string'))) return null;
      return { subject: payload.sub, role, jobs: jobs as '*' | string[], expiresAt: payload.exp * 1000 };
    } catch {
      return null;
    }
  }

  async downloadToken(sha256: string, executionId: string, ttlMs: number): Promise<string> {
    return new SignJWT({ sha: sha256, eid: executionId })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(ISSUER)
      .setAudience('firmware')
      .setExpirationTime(Math.floor((Date.now() + ttlMs) / 1000))
      .sign(this.key);
  }

  /** Claims when the token is valid for this image, else null. */
  async verifyDownloadToken(token: string, sha256: string): Promise<DownloadClaims | null> {
    try {
      const { payload } = await jwtVerify(token, this.key, { issuer: ISSUER, audience: 'firmware', algorithms: ['HS256'] });
      if (payload.sha !== sha256 || typeof payload.eid !== 'string' || !payload.exp) return null;
      return { sha256, executionId: payload.eid, expiresAt: payload.exp * 1000 };
    } catch {
      return null;
    }
  }
}
