/**
 * Signed short-lived tokens (JWT, HS256): MQTT credentials for browsers and per-execution firmware
 * download tokens bound to one image.
 *
 * fast-jwt signs and verifies synchronously with node:crypto's HMAC: every firmware download
 * verifies one token and every execution signs one, and the WebCrypto path (jose) cost ~80 µs of
 * CPU per call against ~5 µs here (`npm run bench` profile: 9 % of the api,broker process).
 * The tokens are plain HS256 JWTs either way, so tokens issued by an older process still verify.
 */
import { createSigner, createVerifier } from 'fast-jwt';
import type { OperatorRole } from '../config.js';

const ISSUER = 'fleetflash';
const ALGORITHM = 'HS256';

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

type Verify = (token: string) => Record<string, unknown>;

export class TokenSigner {
  private readonly signBrowser: (payload: Record<string, unknown>) => string;
  private readonly signDownload: (payload: Record<string, unknown>) => string;
  private readonly verifyBrowser: Verify;
  private readonly verifyDownload: Verify;

  constructor(secret: string) {
    const key = Buffer.from(secret, 'utf8');
    this.signBrowser = createSigner({ key, algorithm: ALGORITHM, iss: ISSUER, aud: 'mqtt' });
    // No `iat`: the URL carrying the token stays shorter, and nothing reads it.
    this.signDownload = createSigner({ key, algorithm: ALGORITHM, iss: ISSUER, aud: 'firmware', noTimestamp: true });
    const verifier = (audience: string, required: string[]): Verify =>
      createVerifier({
        key,
        algorithms: [ALGORITHM],
        allowedIss: ISSUER,
        allowedAud: audience,
        requiredClaims: required,
      }) as Verify;
    this.verifyBrowser = verifier('mqtt', ['exp', 'sub']);
    this.verifyDownload = verifier('firmware', ['exp']);
  }

  browserToken(subject: string, role: OperatorRole, jobs: '*' | string[], ttlMs: number): { token: string; expiresAt: number } {
    const expiresAt = Math.floor((Date.now() + ttlMs) / 1000) * 1000;
    const token = this.signBrowser({ role, jobs, sub: subject, exp: expiresAt / 1000 });
    return { token, expiresAt };
  }

  /** Null for expired, tampered or foreign tokens. */
  verifyBrowserToken(token: string): BrowserClaims | null {
    const payload = verified(this.verifyBrowser, token);
    if (!payload) return null;
    const { role, jobs, sub, exp } = payload;
    if ((role !== 'viewer' && role !== 'operator') || typeof sub !== 'string' || typeof exp !== 'number') return null;
    if (jobs !== '*' && !(Array.isArray(jobs) && jobs.every((j) => typeof j === 'string'))) return null;
    return { subject: sub, role, jobs: jobs as '*' | string[], expiresAt: exp * 1000 };
  }

  downloadToken(sha256: string, executionId: string, ttlMs: number): string {
    return this.signDownload({ sha: sha256, eid: executionId, exp: Math.floor((Date.now() + ttlMs) / 1000) });
  }

  /** Claims when the token is valid for this image, else null. */
  verifyDownloadToken(token: string, sha256: string): DownloadClaims | null {
    const payload = verified(this.verifyDownload, token);
    if (!payload) return null;
    const { sha, eid, exp } = payload;
    if (sha !== sha256 || typeof eid !== 'string' || typeof exp !== 'number') return null;
    return { sha256, executionId: eid, expiresAt: exp * 1000 };
  }
}

/** The payload of a valid token; null for any token fast-jwt refuses (malformed, forged, expired…). */
function verified(verify: Verify, token: string): Record<string, unknown> | null {
  try {
    return verify(token);
  } catch {
    return null;
  }
}
